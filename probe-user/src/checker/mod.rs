//! The checker: a pure state machine from trace events to violations and statistics.
