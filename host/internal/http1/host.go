package http1

// validHost checks uri-host [ ":" port ] (RFC 9110 §7.2, RFC 3986 §3.2.2).
// It is deliberately narrower than RFC 3986: no userinfo, no percent-escapes,
// no IPvFuture, no IPv6 zone. Those forms have no use in a Host a browser or
// proxy sends, and each is a place where two URL parsers have disagreed on
// which host a request is for.
func validHost(b []byte, needPort bool) bool {
	if len(b) == 0 {
		return false
	}
	var port []byte
	hasPort := false
	if b[0] == '[' {
		end := -1
		for i, c := range b {
			if c == ']' {
				end = i
				break
			}
		}
		if end < 0 || !validIPv6(b[1:end]) {
			return false
		}
		if rest := b[end+1:]; len(rest) > 0 {
			if rest[0] != ':' {
				return false
			}
			hasPort, port = true, rest[1:]
		}
	} else {
		i := 0
		for i < len(b) && class[b[i]]&cHost != 0 {
			i++
		}
		switch {
		case i == 0:
			return false
		case i < len(b):
			if b[i] != ':' {
				return false
			}
			hasPort, port = true, b[i+1:]
		}
	}
	if needPort && len(port) == 0 {
		return false
	}
	return !hasPort || validPort(port)
}

// validPort accepts an empty port (RFC 3986 allows "host:") or 1-5 digits up
// to 65535. A longer run of digits is no port any client means.
func validPort(b []byte) bool {
	if len(b) > 5 {
		return false
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
		n = n*10 + int(c-'0')
	}
	return n <= 65535
}

// validIPv6 accepts the RFC 4291 text forms that net/netip accepts without a
// zone: up to eight 1-4 digit hex groups, at most one "::" standing for at
// least one group, and an optional dotted-quad tail worth two groups.
func validIPv6(b []byte) bool {
	groups, ellipsis, i := 0, false, 0
	if len(b) >= 2 && b[0] == ':' && b[1] == ':' {
		ellipsis, i = true, 2
	} else if len(b) > 0 && b[0] == ':' {
		return false
	}
	for i < len(b) {
		j := i
		for j < len(b) && isHex(b[j]) {
			j++
		}
		if j < len(b) && b[j] == '.' {
			if !validIPv4(b[i:]) {
				return false
			}
			groups += 2
			break
		}
		if j == i || j-i > 4 {
			return false
		}
		groups++
		if i = j; i == len(b) {
			break
		}
		if b[i] != ':' {
			return false
		}
		if i++; i == len(b) {
			return false // a single trailing ':'
		}
		if b[i] == ':' {
			if ellipsis {
				return false
			}
			ellipsis = true
			i++
		}
	}
	if ellipsis {
		return groups <= 7
	}
	return groups == 8
}

// validIPv4 accepts exactly four decimal octets without leading zeros, the
// form net/netip accepts; "010" is octal to some parsers and decimal to others.
func validIPv4(b []byte) bool {
	octets, n, digits := 0, 0, 0
	for i := 0; i <= len(b); i++ {
		if i == len(b) || b[i] == '.' {
			if digits == 0 || n > 255 {
				return false
			}
			octets++
			n, digits = 0, 0
			continue
		}
		c := b[i]
		if c < '0' || c > '9' || (digits == 1 && n == 0) || digits == 3 {
			return false
		}
		n = n*10 + int(c-'0')
		digits++
	}
	return octets == 4
}
