"""Running boards: the models store, memory fit, doctor, tuning, systemd install (and nginx config).

Each module does one job and reads the system through injectable paths (a sysfs root, a meminfo
file) so it can be tested on any machine against a fake tree the test builds.
"""
