//! SKELETON: process
