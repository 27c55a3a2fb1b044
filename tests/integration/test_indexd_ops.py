"""uds-indexd as an operator runs it: the config file, refused settings, the metrics page."""
import re
import socket
import subprocess
import urllib.error
import urllib.request

import pytest

from indexd import (POST, QUERY, TOP, Daemon, admin, advice, batch, create, free_port,
                    post_all)


def run_refused(program, *args, words):
    result = subprocess.run([str(program), *args], capture_output=True, text=True, timeout=30)
    assert result.returncode != 0, result.stderr
    assert words in result.stderr, result.stderr
    return result


def test_refused_settings(indexd_program, tmp_path):
    data = f"--data-dir={tmp_path / 'data'}"
    run_refused(indexd_program, data, words="--insecure")
    run_refused(indexd_program, data, "--insecure", "--listen=0.0.0.0:7400",
                words="not loopback or a unix socket")
    run_refused(indexd_program, data, "--insecure", "--workers=0", words="--workers")
    run_refused(indexd_program, data, "--insecure", "--log-level=loud", words="log level")
    run_refused(indexd_program, data, "--tls-cert=x.pem", words="go together")
    run_refused(indexd_program, data, "--insecure", "--tokens=/nonexistent/tokens",
                words="cannot open tokens file")
    bad_tokens = tmp_path / "tokens"
    bad_tokens.write_text("client short-token vol\n")
    run_refused(indexd_program, data, "--insecure", f"--tokens={bad_tokens}",
                words="16 to 256 characters")
    config = tmp_path / "bad.conf"
    config.write_text("insecure\nlisten = 127.0.0.1:1\ncolour = blue\n")
    run_refused(indexd_program, f"--config={config}", words="bad.conf:3: unknown setting")
    # An address in use: a clear error and exit 1, not a crash.
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_refused(indexd_program, data, "--insecure",
                             f"--listen=127.0.0.1:{port}", words="cannot listen")
        assert result.returncode == 1


def test_config_file(stubs, indexd_program, tmp_path):
    """A config file starts a working server and command-line flags win over it; the example
    tokens file of deploy/ loads and its operator token works."""
    example = (TOP / "deploy" / "uds-indexd.conf").read_text()
    assert "listen" in example and "tokens" in example and "metrics" in example
    d = Daemon(indexd_program, tmp_path)
    metrics_port = free_port()
    config = tmp_path / "indexd.conf"
    config.write_text(f"""# test settings
listen = 127.0.0.1:1
data-dir = {tmp_path / 'from-config'}
workers = 3
insecure
metrics = 127.0.0.1:{metrics_port}
""")
    d.extra = [f"--config={config}", "--insecure",
               f"--tokens={TOP / 'deploy' / 'uds-indexd.tokens'}"]
    d.start()
    with d.channel(tcp=True) as channel:
        create(stubs, channel, "c", token="REPLACE-WITH-A-RANDOM-TOKEN-3")
    assert (tmp_path / "data" / "c.uds").exists()  # --data-dir on the command line won
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as page:
        assert b"uds_indexes 1" in page.read()
    assert d.stop() == 0, d.log.read_text()[-2000:]


def scrape(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as page:
        assert page.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return page.read().decode()


def value(text, metric):
    match = re.search("^" + re.escape(metric) + r" (\S+)$", text, re.M)
    assert match, f"{metric} not in the metrics"
    return float(match.group(1))


def test_metrics(stubs, indexd_program, tmp_path):
    port = free_port()
    d = Daemon(indexd_program, tmp_path, f"--metrics=127.0.0.1:{port}").start()
    with d.channel() as channel:
        create(stubs, channel, "m1")
        create(stubs, channel, "m2")
        post_all(stubs, channel, "m1", list(range(300)))
        advice(stubs, channel).Batch(batch(stubs, "m1", QUERY, range(250, 350)))
        post_all(stubs, channel, "m2", list(range(7)))
        list(advice(stubs, channel).Stream(iter([batch(stubs, "m2", POST, range(7))])))
        m1_stats = admin(stubs, channel).GetStats(stubs["index"].StatsRequest(name="m1"))
        m1_memory = m1_stats.memory_bytes
    text = scrape(port)
    # Every line is a comment or a well-formed sample.
    for line in text.splitlines():
        assert line.startswith("# ") or re.match(r'^[a-z_]+(\{[^}]*\})? \S+$', line), line
    assert value(text, 'uds_requests_total{index="m1",type="post",outcome="not_found"}') == 300
    assert value(text, 'uds_requests_total{index="m1",type="query",outcome="found"}') == 50
    assert value(text, 'uds_requests_total{index="m1",type="query",outcome="not_found"}') == 50
    assert value(text, 'uds_requests_total{index="m2",type="post",outcome="found"}') == 7
    assert value(text, 'uds_found_total{index="m2",location="open_chapter"}') == 7
    assert value(text, 'uds_index_entries{index="m1"}') == 300
    assert value(text, 'uds_index_memory_bytes{index="m1"}') == m1_memory > 0
    assert value(text, 'uds_rpc_calls_total{method="/uds.v1.Advice/Batch",code="0"}') == 3
    assert value(text, 'uds_rpc_calls_total{method="/uds.v1.Advice/Stream",code="0"}') == 1
    assert value(text, "uds_indexes") == 2
    assert value(text, "process_resident_memory_bytes") > 0
    assert "# TYPE uds_requests_total counter" in text
    with pytest.raises(urllib.error.HTTPError) as error:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/other", timeout=10)
    assert error.value.code == 404
    assert d.stop() == 0, d.log.read_text()[-2000:]
