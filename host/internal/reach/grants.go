package reach

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// Pattern is one grant of the network: a host and a port. Host is a name ("db",
// "api.example.com"), a name pattern ("*.example.com": any name below it, not the name
// itself), an IP address, or "*" (any host); Port 0 means any port.
type Pattern struct {
	Host string
	Port int
}

// ParsePattern reads the command line's form, HOST[:PORT] (an IPv6 address in brackets,
// "[::1]:8080"; ":8080" is any host on that port for a listen grant, "*:443" any host for a
// connect grant; PORT may be "*").
func ParsePattern(s string) (Pattern, error) {
	bad := func(why string) (Pattern, error) {
		return Pattern{}, fmt.Errorf("%q: %s; want HOST[:PORT], such as db:5432, *.example.com:443, 127.0.0.1, [::1]:8080", s, why)
	}
	host, port := s, ""
	if h, p, err := net.SplitHostPort(s); err == nil {
		host, port = h, p
	} else if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
		host = s[1 : len(s)-1]
	} else if strings.Count(s, ":") > 1 {
		return bad("an IPv6 address with a port goes in brackets")
	}
	p := Pattern{Host: strings.ToLower(host)}
	switch {
	case port == "" || port == "*":
	default:
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 {
			return bad("the port is not a number from 1 to 65535")
		}
		p.Port = n
	}
	switch {
	case p.Host == "" && port != "": // ":8080": any host
		p.Host = "*"
	case p.Host == "":
		return bad("the host is empty")
	case p.Host == "*":
	case strings.HasPrefix(p.Host, "*."):
		if !validName(p.Host[2:]) {
			return bad("the name after *. is not a host name")
		}
	case strings.Contains(p.Host, "*"):
		return bad(`a wildcard is "*" or a leading "*."`)
	default:
		if _, err := netip.ParseAddr(p.Host); err != nil && !validName(p.Host) {
			return bad("the host is neither an IP address nor a host name")
		}
	}
	return p, nil
}

// validName says whether s is a DNS host name: dot-separated labels of letters, digits and
// hyphens (and underscores, which service names use).
func validName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(strings.TrimSuffix(s, "."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// String is the pattern in the command line's form.
func (p Pattern) String() string {
	h := p.Host
	if strings.Contains(h, ":") {
		h = "[" + h + "]"
	}
	if p.Port == 0 {
		return h
	}
	return h + ":" + strconv.Itoa(p.Port)
}

// matches says whether the pattern grants host (as the program wrote it, before any name is
// resolved) and port.
func (p Pattern) matches(host string, port int) bool {
	if p.Port != 0 && p.Port != port {
		return false
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	switch {
	case p.Host == "*":
		return true
	case strings.HasPrefix(p.Host, "*."):
		return strings.HasSuffix(host, p.Host[1:])
	}
	if a, err := netip.ParseAddr(host); err == nil { // "::1" and "0:0::1" are one address
		b, err := netip.ParseAddr(p.Host)
		return err == nil && a.Unmap() == b.Unmap()
	}
	return host == strings.TrimSuffix(p.Host, ".")
}

// Grants are what a program may reach: nothing unless a pattern names it.
type Grants []Pattern

// Allows says whether a pattern grants host and port.
func (g Grants) Allows(host string, port int) bool {
	for _, p := range g {
		if p.matches(host, port) {
			return true
		}
	}
	return false
}

// AllowsHost says whether a pattern grants host on some port.
func (g Grants) AllowsHost(host string) bool {
	for _, p := range g {
		if (Pattern{Host: p.Host}).matches(host, 0) {
			return true
		}
	}
	return false
}

// ParseGrants parses each pattern of list.
func ParseGrants(list []string) (Grants, error) {
	var g Grants
	for _, s := range list {
		p, err := ParsePattern(s)
		if err != nil {
			return nil, err
		}
		g = append(g, p)
	}
	return g, nil
}

// hostPort is host and port as a grant names them: "db:5432", "[::1]:80".
func hostPort(host string, port int) string {
	return net.JoinHostPort(host, strconv.Itoa(port))
}
