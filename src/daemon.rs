//! The long-running loop: jobs, signals, sd_notify.
