//! SKELETON: signals
