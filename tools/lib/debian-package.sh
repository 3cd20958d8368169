# Sourced by tools/*.sh: fetch one package from a Debian suite's archive (the machine's own mirror,
# the suite switched) and unpack it into a folder, without touching the system's apt sources or
# installing anything. Needs root (apt's own download) and apt-get.
#
#   debian_package_unpack PACKAGE SUITE DEST    # DEST ends up holding the package's tree (usr/...)

debian_package_unpack() {
  local package="$1" suite="$2" dest="$3" work sources_file mirror deb
  work="$(mktemp -d)"
  mkdir -p "$work/lists/partial" "$work/archives/partial" "$work/parts"
  sources_file="$(ls /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)"
  local apt_src
  if [ -n "$sources_file" ]; then
    awk -v suite="$suite" '/^Suites:/ { print "Suites: " suite; next } { print }' "$sources_file" |
      awk 'BEGIN{RS=""; ORS="\n\n"} /debian-security/ {next} {print}' >"$work/parts/moonmind.sources"
    apt_src=(-o "Dir::Etc::sourcelist=-" -o "Dir::Etc::sourceparts=$work/parts")
  else
    mirror="$(sed -n 's/^deb \(http[^ ]*debian\) .*/\1/p' /etc/apt/sources.list 2>/dev/null | head -n1)"
    echo "deb ${mirror:-http://deb.debian.org/debian} $suite main" >"$work/sources.list"
    apt_src=(-o "Dir::Etc::sourcelist=$work/sources.list" -o "Dir::Etc::sourceparts=-")
  fi
  local apt_opts=("${apt_src[@]}" -o "Dir::State::Lists=$work/lists" -o "Dir::Cache::Archives=$work/archives"
    -o "APT::Get::List-Cleanup=0" -o "Debug::NoLocking=1")
  if ! apt-get "${apt_opts[@]}" update -qq >&2 || ! (cd "$work" && apt-get "${apt_opts[@]}" download "$package" >&2); then
    rm -rf "$work"
    return 1
  fi
  deb="$(ls "$work"/"${package}"_*.deb | head -n1)"
  rm -rf "$dest"
  mkdir -p "$dest"
  dpkg-deb -x "$deb" "$dest"
  rm -rf "$work"
}

# The machine's Debian mirror (for debootstrap), e.g. http://deb.debian.org/debian.
debian_mirror() {
  local sources_file
  sources_file="$(ls /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)"
  if [ -n "$sources_file" ]; then
    awk '/^URIs:/ && $2 !~ /security/ { print $2; exit }' "$sources_file"
  else
    sed -n 's/^deb \(http[^ ]*debian\) .*/\1/p' /etc/apt/sources.list 2>/dev/null | head -n1
  fi
}
