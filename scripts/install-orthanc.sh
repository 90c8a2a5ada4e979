#!/usr/bin/env bash
# Install Orthanc and its DICOMweb plugin from Debian (the integration tests start their own instance).
set -euo pipefail
if command -v Orthanc >/dev/null 2>&1 && [ -f /usr/share/orthanc/plugins/libOrthancDicomWeb.so ]; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq orthanc orthanc-dicomweb >/dev/null
# The package starts a system-wide Orthanc where init allows it; the tests start their own on free ports.
command -v Orthanc >/dev/null
test -f /usr/share/orthanc/plugins/libOrthancDicomWeb.so
echo "Orthanc installed: $(Orthanc --version | head -1)"
