"""The hand-off to labelers: Label Studio or files out, validated labels in, recorded as a data change.

May import: alops.core, alops.data, alops.al."""
