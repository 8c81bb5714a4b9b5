//! Any bytes as the Azure CLI's or azd's standard output, standard error (with any exit code), and as a UTC offset,
//! read as the developer-tool credentials and the date reader read them. Never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.is_empty() {
        return;
    }
    use entraid_identity::fuzzing as f;
    let code = i32::from(data[0]) - 1;
    let rest = &data[1..];
    let _ = f::az_output(rest);
    let _ = f::azd_output(rest);
    let text = String::from_utf8_lossy(rest);
    let _ = f::cli_failure(&text, Some(code));
    let _ = f::cli_failure(&text, None);
    let _ = f::utc_offset(&text);
});
