# Tandem .rpm %post: $1 is 1 on install, 2 or more on upgrade.
mkdir -p /etc/tandem
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
    if [ "$1" -ge 2 ]; then
        systemctl try-restart tandem.service >/dev/null 2>&1 || :
    fi
fi
