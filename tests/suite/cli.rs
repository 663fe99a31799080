//! The `lbp-cds` binary: offline evaluation and content validation.

use std::process::Command;

use crate::common::*;

fn binary() -> Command {
    Command::new(env!("CARGO_BIN_EXE_lbp-cds"))
}

fn write_request(dir: &std::path::Path, scenario: &Scenario) -> std::path::PathBuf {
    let path = dir.join("request.json");
    std::fs::write(&path, serde_json::to_vec(&scenario.body()).unwrap()).unwrap();
    path
}

#[test]
fn evaluate_prints_readable_cards_and_raw_json() {
    let dir = tempdir();
    let scenario = Scenario::new("order-select", 50).low_back_pain(7).condition(ICD10, "G83.4", 2).order(
        CPT,
        "72148",
        "MRI lumbar",
    );
    let file = write_request(&dir, &scenario);
    let output = binary().arg("evaluate").arg(&file).args(["--today", "2026-03-02"]).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(text.contains("1. [CRITICAL]"), "most urgent first: {text}");
    assert!(text.contains("type: red-flag-cauda-equina") && text.contains("type: imaging-indicated"), "{text}");
    assert!(text.contains("appropriate"), "{text}");

    let output = binary().arg("evaluate").arg(&file).args(["--today", "2026-03-02", "--json"]).output().unwrap();
    let response: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_valid_response(&response);
    assert_eq!(card_types(&response), vec!["imaging-indicated", "red-flag-cauda-equina"]);
}

#[test]
fn evaluate_reports_bad_input_without_panicking() {
    let dir = tempdir();
    let file = dir.join("bad.json");
    std::fs::write(&file, b"{\"hook\": \"patient-view\", \"hookInstance\": ").unwrap();
    let output = binary().arg("evaluate").arg(&file).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no service") || stderr.contains("not valid JSON"), "{stderr}");
}

/// A content directory that does not match the card types' and value sets' definitions stops
/// start-up with exit code 2, naming the file and the field (issue 10: never a panic or empty
/// text at call time).
#[test]
fn invalid_content_stops_start_up_naming_file_and_field() {
    let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("cards");
    // (file, text to replace, replacement or None to delete the file, field the error names)
    let cases: [(&str, &str, Option<&str>, &str); 7] = [
        (
            "rules.toml",
            "imaging_threshold_weeks = 6",
            Some("imaging_threshold_weeks = 0"),
            "thresholds.imaging_threshold_weeks",
        ),
        // A placeholder the card's family does not supply.
        ("red-flag-cancer.toml", "summary = \"", Some("summary = \"{patient_name} "), "summary"),
        // A placeholder of another family (imaging's {modality} in a red-flag card).
        ("red-flag-infection.toml", "summary = \"", Some("summary = \"{modality} "), "summary"),
        // A rule naming a value set that does not exist.
        (
            "rules.toml",
            "value_set = \"cauda-equina\"",
            Some("value_set = \"cauda-equina-typo\""),
            "red_flags[0].value_set",
        ),
        // A value set the code reads, removed.
        ("valuesets/lumbar-imaging.json", "", None, "(file)"),
        // A variant the card type does not have.
        ("stratified-care.toml", "[variants.low]", Some("[variants.lowest]"), "variants.low"),
        // A shared text with a placeholder it is not given.
        ("texts.toml", "none = \"no LBP diagnosis\"", Some("none = \"{weeks}\""), "duration_short.none"),
    ];
    for (file, from, to, field) in cases {
        let dir = tempdir();
        copy_dir(&source, &dir);
        let path = dir.join(file);
        match to {
            Some(to) => {
                let text = std::fs::read_to_string(&path).unwrap();
                assert!(text.contains(from), "{file} no longer contains {from}");
                std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
            }
            None => std::fs::remove_file(&path).unwrap(),
        }
        let output = binary().args(["serve", "--listen", "127.0.0.1:0", "--content"]).arg(&dir).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{file}: {stderr}");
        assert!(stderr.contains(file) && stderr.contains(&format!("`{field}`")), "{file} {field}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }

    let output = binary().arg("check-content").output().unwrap();
    assert!(output.status.success());
    assert!(String::from_utf8_lossy(&output.stdout).contains("content is valid"));
}

#[test]
fn without_issuers_the_service_refuses_a_non_loopback_address() {
    let output = binary().args(["serve", "--listen", "0.0.0.0:0"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("refusing to listen") && stderr.contains("--auth-config"), "{stderr}");
}

/// The settings file's policy is the product's: a file that asks for a public address without
/// authentication is refused like the flag, and the environment overrides the file.
#[test]
fn a_settings_file_is_layered_under_the_environment() {
    let dir = tempdir();
    let file = dir.join("settings.toml");
    std::fs::write(&file, "listen = \"0.0.0.0:0\"\n").unwrap();
    let output = binary().args(["serve", "--config"]).arg(&file).env_remove("LBP_CDS_LISTEN").output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("refusing to listen on 0.0.0.0"),
        "the file's address was used"
    );
    // LBP_CDS_LISTEN beats the file: the service starts on loopback (and is stopped at once).
    let mut child = binary()
        .args(["serve", "--config"])
        .arg(&file)
        .env("LBP_CDS_LISTEN", "127.0.0.1:0")
        .env("LBP_CDS_DATABASE_URL", format!("sqlite://{}", dir.join("lbp-cds.db").display()))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let line = std::io::BufRead::lines(std::io::BufReader::new(stderr))
        .map_while(Result::ok)
        .find(|line| line.contains("listening") || line.contains("refusing"))
        .unwrap_or_default();
    let _ = child.kill();
    let _ = child.wait();
    assert!(line.contains("listening") && line.contains("127.0.0.1"), "{line}");
}

#[test]
fn token_keygen_and_sign_make_a_usable_jwt() {
    let dir = tempdir();
    let output = binary().args(["token", "keygen", "--kid", "cli-1", "--out"]).arg(&dir).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let jwks: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("jwks.json")).unwrap()).unwrap();
    assert_eq!(jwks["keys"][0]["kid"], "cli-1");
    assert!(jwks["keys"][0].get("d").is_none(), "the JWKS must not contain the private key");
    let output = binary()
        .args([
            "token",
            "sign",
            "--kid",
            "cli-1",
            "--iss",
            "https://ehr.example.org",
            "--aud",
            "http://127.0.0.1:8080/cds-services/lbp-patient-view",
            "--key",
        ])
        .arg(dir.join("cli-1.pem"))
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let token = String::from_utf8(output.stdout).unwrap();
    let token = token.trim();
    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(header.kid.as_deref(), Some("cli-1"));
    let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(jwks["keys"][0].clone()).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES384);
    validation.set_audience(&["http://127.0.0.1:8080/cds-services/lbp-patient-view"]);
    let claims = jsonwebtoken::decode::<serde_json::Value>(
        token,
        &jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap(),
        &validation,
    )
    .unwrap()
    .claims;
    assert_eq!(claims["iss"], "https://ehr.example.org");
    assert!(claims["jti"].is_string());
}

#[test]
fn the_clinical_date_follows_the_time_zone() {
    let dir = tempdir();
    // In Kiritimati (UTC+14) the date is always a day or two ahead of Pago Pago (UTC-11): an
    // episode that is exactly 6 weeks old in Kiritimati is still under 6 weeks in Pago Pago.
    let now = jiff::Timestamp::now();
    let east = lbp_cds::clock::date_at(now, &lbp_cds::clock::parse_time_zone("Pacific/Kiritimati").unwrap());
    let onset = (east - time::Duration::days(42)).to_string();
    let scenario = Scenario::new("order-sign", 45)
        .condition_full(ICD10, "M54.50", serde_json::json!({"onsetDateTime": onset}))
        .order(CPT, "72148", "MRI lumbar");
    let file = write_request(&dir, &scenario);
    let run = |zone: &str| {
        let output = binary()
            .arg("evaluate")
            .arg(&file)
            .arg("--json")
            .env("LBP_CDS_TIME_ZONE", zone)
            .env_remove("LBP_CDS_TODAY")
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        card_types(&serde_json::from_slice(&output.stdout).unwrap())
    };
    assert!(run("Pacific/Kiritimati").contains(&"imaging-conditional".to_owned()), "6 weeks in Kiritimati");
    assert!(run("Pacific/Pago_Pago").contains(&"imaging-not-indicated".to_owned()), "under 6 weeks in Pago Pago");

    let output = binary().arg("evaluate").arg(&file).args(["--time-zone", "Mars/Olympus_Mons"]).output().unwrap();
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("IANA time zone"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
