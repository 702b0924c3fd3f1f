# Tandem .rpm %postun: RPM has no purge; the headless agent's state goes on removal, per-user
# data dirs stay.
if [ "$1" -eq 0 ]; then
    rm -rf /var/lib/tandem /var/lib/private/tandem
fi
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
fi
