//! SKELETON: plan
