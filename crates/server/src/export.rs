//! CSV exports for auditors. Device-supplied text is untrusted: a hostname such as
//! `=HYPERLINK(…)` would run as a formula when the file is opened in a spreadsheet, so every
//! cell that starts with a formula character is defused with a leading apostrophe (OWASP's
//! advice on CSV injection), and quoting is left to the `csv` crate.

use tandem_proto::check::worst_status;
use tandem_proto::CheckId;

use crate::store::{DeviceFilter, DeviceSummary, Store, StoreError};

/// Every device that is not revoked, read a page at a time.
pub async fn all_devices(store: &dyn Store) -> Result<Vec<DeviceSummary>, StoreError> {
    const PAGE: u32 = 1000;
    let mut filter = DeviceFilter {
        limit: PAGE,
        ..DeviceFilter::default()
    };
    let mut devices = Vec::new();
    loop {
        let page = store.list_devices(&filter).await?;
        let n = page.devices.len();
        devices.extend(page.devices);
        if n < PAGE as usize {
            return Ok(devices);
        }
        filter.offset += u64::from(PAGE);
    }
}

/// Characters that make a spreadsheet treat a cell as a formula (tab and carriage return
/// too, which some spreadsheets strip before looking at the next one).
const FORMULA_START: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// `cell`, defused if a spreadsheet would read it as a formula.
pub fn safe_cell(cell: &str) -> std::borrow::Cow<'_, str> {
    if cell.starts_with(FORMULA_START) {
        format!("'{cell}").into()
    } else {
        cell.into()
    }
}

/// One row per device: who and what it is, when it last reported, the worst status, and one
/// column per check with its latest status (empty when the device never reported it).
pub fn compliance_csv(devices: &[DeviceSummary]) -> Result<Vec<u8>, csv::Error> {
    let mut out = csv::Writer::from_writer(Vec::new());
    let mut header = vec![
        "device_id",
        "hostname",
        "user_login",
        "group",
        "os",
        "os_version",
        "last_report_at",
        "policy_version",
        "worst_status",
    ];
    header.extend(CheckId::ALL.iter().map(|c| c.as_str()));
    out.write_record(&header)?;
    for summary in devices {
        let d = &summary.device;
        let mut row: Vec<String> = vec![
            d.id.to_string(),
            d.hostname.clone(),
            d.user_login.clone(),
            d.group.clone(),
            d.os.clone(),
            d.os_version.clone(),
            d.last_report_at.map(|t| t.to_rfc3339()).unwrap_or_default(),
            d.policy_version.map(|v| v.to_string()).unwrap_or_default(),
            worst_status(&d.results)
                .map(|s| s.as_str().to_owned())
                .unwrap_or_default(),
        ];
        for check in CheckId::ALL {
            let status = d.results.iter().find(|r| r.id == check);
            row.push(
                status
                    .map(|r| r.status.as_str().to_owned())
                    .unwrap_or_default(),
            );
        }
        out.write_record(row.iter().map(|c| safe_cell(c).into_owned()))?;
    }
    out.into_inner().map_err(|e| e.into_error().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_cells_are_defused_and_others_left_alone() {
        assert_eq!(safe_cell("=1+2"), "'=1+2");
        assert_eq!(safe_cell("+cmd"), "'+cmd");
        assert_eq!(safe_cell("-2"), "'-2");
        assert_eq!(safe_cell("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(safe_cell("\t=x"), "'\t=x");
        assert_eq!(safe_cell("laptop-1"), "laptop-1");
        assert_eq!(safe_cell(""), "");
    }
}
