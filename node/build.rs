//! Links the addon the way Node expects to load it.

fn main() {
    napi_build::setup();
}
