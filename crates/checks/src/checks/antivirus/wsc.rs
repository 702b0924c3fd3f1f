//! Windows Security Center (`root/SecurityCenter2`) product records and the
//! `productState` bit field.
//!
//! `productState` is undocumented by Microsoft; the layout below is the one Security Center
//! has used since Windows Vista, as decoded by osquery and others:
//!
//! | bits   | mask       | meaning |
//! |--------|------------|---------|
//! | 16–23  | `0xFF0000` | security provider (1 firewall, 2 auto-update, 4 antivirus, 8 antispyware, …) |
//! | 12–15  | `0x00F000` | state: `0x0000` off, `0x1000` on, `0x2000` snoozed, `0x3000` expired |
//! | 8–11   | `0x000F00` | owner: `0x100` Microsoft, `0x000` third party |
//! | 4–7    | `0x0000F0` | signatures: `0x00` up to date, `0x10` **out of date** |
//!
//! So `397568 = 0x061100` is on, Microsoft, up to date, and `397584 = 0x061110` is on with
//! out-of-date signatures. (The signature nibble is set when they are *out* of date; reading
//! it the other way round marks every healthy Defender as stale.)
//!
//! When Security Center is missing (Windows Server has none), Microsoft Defender's own
//! status (`Get-MpComputerStatus`) is read instead.

use serde::Serialize;
use serde_json::Value;

use crate::checks::os_supported::support::{json_bool, json_items};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProductStatus {
    Off,
    On,
    Snoozed,
    Expired,
    Unrecognised,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ProductState {
    pub raw: u32,
    pub status: ProductStatus,
    pub microsoft: bool,
    pub signatures_up_to_date: bool,
}

pub fn decode_product_state(raw: u32) -> ProductState {
    let status = match raw & 0xF000 {
        0x0000 => ProductStatus::Off,
        0x1000 => ProductStatus::On,
        0x2000 => ProductStatus::Snoozed,
        0x3000 => ProductStatus::Expired,
        _ => ProductStatus::Unrecognised,
    };
    ProductState {
        raw,
        status,
        microsoft: raw & 0x0F00 == 0x0100,
        signatures_up_to_date: raw & 0x00F0 == 0,
    }
}

/// One `AntiVirusProduct` record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AvProduct {
    pub name: String,
    pub state: ProductState,
}

/// Records from `Get-CimInstance -Namespace root/SecurityCenter2 -ClassName
/// AntiVirusProduct | Select-Object displayName, productState | ConvertTo-Json`.
pub fn parse_av_products(stdout: &str) -> Option<Vec<AvProduct>> {
    json_items(stdout)?
        .iter()
        .map(|i| {
            let name = i.get("displayName")?.as_str()?.to_owned();
            let raw = u32::try_from(i.get("productState")?.as_u64()?).ok()?;
            Some(AvProduct {
                name,
                state: decode_product_state(raw),
            })
        })
        .collect()
}

/// Microsoft Defender's own view, from `Get-MpComputerStatus`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DefenderStatus {
    pub service_enabled: bool,
    pub antivirus_enabled: bool,
    pub real_time: bool,
    /// Days since the signatures were updated.
    pub signature_age_days: Option<u64>,
}

pub fn parse_mp_status(stdout: &str) -> Option<DefenderStatus> {
    let items = json_items(stdout)?;
    let i = items.first()?;
    let b = |k: &str| i.get(k).and_then(json_bool);
    Some(DefenderStatus {
        service_enabled: b("AMServiceEnabled")?,
        antivirus_enabled: b("AntivirusEnabled")?,
        real_time: b("RealTimeProtectionEnabled").unwrap_or(false),
        signature_age_days: i.get("AntivirusSignatureAge").and_then(Value::as_u64),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_states_decode_exactly() {
        let s = decode_product_state(397568); // 0x061100
        assert_eq!(s.status, ProductStatus::On);
        assert!(s.microsoft && s.signatures_up_to_date);
        let s = decode_product_state(397584); // 0x061110
        assert_eq!(s.status, ProductStatus::On);
        assert!(!s.signatures_up_to_date);
        let s = decode_product_state(393472); // 0x060100: Defender off (passive beside another)
        assert_eq!(s.status, ProductStatus::Off);
        let s = decode_product_state(266240); // 0x041000: third party on, up to date
        assert_eq!(s.status, ProductStatus::On);
        assert!(!s.microsoft && s.signatures_up_to_date);
        assert_eq!(
            decode_product_state(0x062100).status,
            ProductStatus::Snoozed
        );
        assert_eq!(
            decode_product_state(0x063100).status,
            ProductStatus::Expired
        );
    }
}
