//! Build script: Tauri's code generation (context, icons, an empty ACL).

fn main() {
    tauri_build::build()
}
