"""Block layer facts: the bits behind the ``rwbs`` strings.

The block tracepoints already carry ``rwbs`` as text (e.g. ``"WS"``); raw tracepoints and
struct reads see ``cmd_flags`` (``blk_opf_t``) instead.  Its low 8 bits are the operation,
the rest are ``REQ_*`` flag bits (enum req_flag_bits; the five used here have kept their
numbers through 5.x and 6.x -- checked against 6.18's BTF)."""

# enum req_op
REQ_OP_BITS = 8
REQ_OP_READ = 0
REQ_OP_WRITE = 1
REQ_OP_FLUSH = 2
REQ_OP_DISCARD = 3
REQ_OP_SECURE_ERASE = 5
REQ_OP_ZONE_APPEND = 7
REQ_OP_WRITE_ZEROES = 9

# enum req_flag_bits: bit numbers
REQ_SYNC_BIT = 11
REQ_META_BIT = 12
REQ_FUA_BIT = 17
REQ_PREFLUSH_BIT = 18
REQ_RAHEAD_BIT = 19

# the letters of an rwbs string, in the order blk_fill_rwbs writes them
RWBS_LETTERS = (
    ("F", "flush"),        # before the operation: REQ_PREFLUSH; as the operation: FLUSH
    ("W", "write"),
    ("R", "read"),
    ("D", "discard"),
    ("E", "secure erase"),
    ("N", "other"),
    ("F", "fua"),          # after the operation: REQ_FUA
    ("A", "readahead"),
    ("S", "sync"),
    ("M", "metadata"),
)
