//! floe
