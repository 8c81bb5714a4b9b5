//! Any bytes as the Azure CLI's or azd's standard output (with any local UTC offset), standard error (with any exit
//! code), and `date +%z` output, read as the developer-tool credentials read them. Never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    use entraid_identity::fuzzing as f;
    let offset = i64::from(i16::from_be_bytes([data[0], data[1]])) * 60;
    let code = i32::from(data[2]) - 1;
    let rest = &data[3..];
    let _ = f::az_output(rest, Some(offset));
    let _ = f::az_output(rest, None);
    let _ = f::azd_output(rest);
    let text = String::from_utf8_lossy(rest);
    let _ = f::cli_failure(&text, Some(code));
    let _ = f::cli_failure(&text, None);
    let _ = f::utc_offset(&text);
});
