//! Placeholder: the desktop session fixture.
