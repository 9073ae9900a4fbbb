//! SKELETON: reaper
