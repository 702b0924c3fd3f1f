//! Placeholder: the desktop tests.
