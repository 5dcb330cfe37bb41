"""ABI facts as data tables: syscall names per architecture, errno, signals, capabilities, TCP states."""
