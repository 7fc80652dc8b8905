"""Active learning: query strategies (`strategies`) and streaming, sharded scoring of large pools (`scoring`)."""
