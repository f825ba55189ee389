"""`acr-edge deploy` warns when the Prefect API is plain http to a host other than this one:
the auth string and the block secrets workers read would cross the network in clear."""

from __future__ import annotations

import pytest

from deployments.register import insecure_api_warning, main


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:4200/api",
        "http://127.8.9.10:4200/api",
        "http://localhost:4200/api",
        "http://prefect.localhost/api",
        "http://[::1]:4200/api",
        "https://prefect.example/api",
        "https://10.0.0.5:4200/api",
    ],
)
def test_loopback_or_https_is_quiet(url: str) -> None:
    assert insecure_api_warning(url) is None


@pytest.mark.parametrize(
    "url", ["http://prefect.example:4200/api", "http://10.0.0.5:4200/api", "http://[fd00::5]/api"]
)
def test_plain_http_off_this_host_warns(url: str) -> None:
    text = insecure_api_warning(url)
    assert text is not None and "plain http" in text and "https" in text
    assert "PREFECT_API_AUTH_STRING" in text


def test_deploy_prints_the_warning_before_contacting_the_api(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: "http://prefect.invalid:4200/api"}):
        rc = main([])
    err = capsys.readouterr().err
    assert rc == 1  # the name does not resolve: unreachable, after the warning
    assert "warning: the Prefect API http://prefect.invalid:4200/api is plain http" in err
    assert err.index("warning") < err.index("not reachable")


def test_loopback_deploy_has_no_warning(capsys: pytest.CaptureFixture[str]) -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: "http://127.0.0.1:9/api"}):
        rc = main([])
    err = capsys.readouterr().err
    assert rc == 1 and "not reachable" in err
    assert "warning" not in err
