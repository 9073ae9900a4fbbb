//! SKELETON: readiness
