//! SKELETON: output
