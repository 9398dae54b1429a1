"""Raspberry Pi firmware settings for waitroom nodes: boot config fragments (boot/), pin maps per node role
and hardware revision (pinmaps/, loaded and checked by firmware_config.pins), the udev rule for USB receipt
printers (udev/) and the hardware watchdog (systemd/). firmware_config/README.md explains every setting.
"""
