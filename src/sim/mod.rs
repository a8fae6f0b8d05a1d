//! The vendor simulator: serves the ../shared/vendors contracts on loopback.
