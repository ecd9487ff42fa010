//! `[telemetry]` → [`TelemetryConfig`]: whose trace context is believed, and where
//! spans are exported.

use crate::config::file::TelemetryFile;
use crate::telemetry::{Accept, TelemetryConfig};

use super::Issues;

pub(super) fn telemetry(issues: &mut Issues, t: TelemetryFile) -> TelemetryConfig {
    let accept = match t.traceparent.as_str() {
        "trusted" => Accept::Trusted,
        "any" => Accept::Any,
        "off" => Accept::Off,
        other => {
            issues.add(
                "telemetry.traceparent",
                format!("\"{other}\" is not a choice"),
                "use \"trusted\" (peers in server.trusted_proxies), \"any\" or \"off\"",
            );
            Accept::Trusted
        }
    };
    if let Some(e) = &t.otlp_endpoint {
        let ok = e.parse::<http::Uri>().ok().is_some_and(|u| {
            matches!(u.scheme_str(), Some("http" | "https")) && u.authority().is_some()
        });
        if !ok {
            issues.add(
                "telemetry.otlp_endpoint",
                format!("\"{e}\" is not an http(s) URL"),
                "give the collector's OTLP/HTTP traces URL, e.g. \"http://127.0.0.1:4318/v1/traces\"",
            );
        }
        if accept == Accept::Off {
            issues.add(
                "telemetry.otlp_endpoint",
                "is set while traceparent = \"off\" turns tracing off",
                "remove one of them",
            );
        }
    }
    if !(0.0..=1.0).contains(&t.sample_ratio) {
        issues.add(
            "telemetry.sample_ratio",
            format!("{} is not between 0 and 1", t.sample_ratio),
            "give a share of new traces to export, e.g. 1.0 (all) or 0.1",
        );
    }
    TelemetryConfig {
        accept,
        otlp_endpoint: t.otlp_endpoint,
        service_name: t.service_name,
        sample_ratio: t.sample_ratio,
    }
}
