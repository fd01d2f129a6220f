def pytest_configure(config):
    config.addinivalue_line(
        "markers", "slow: the full ncnn parity set, run by `make -C models verify-all` only")
