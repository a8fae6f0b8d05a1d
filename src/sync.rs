//! One sync run: trigger → poll → fetch pages → normalize → store.
