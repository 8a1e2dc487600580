# Order statistics shared by the benchmark reports (stream.awk, ws.awk): load it first,
# awk -f stats.awk -f REPORT.awk.

# sorted copies v[1..k] into s[1..k] in ascending order; returns k.
function sorted(v, k, s,    i, j, x) {
    for (i = 1; i <= k; i++) s[i] = v[i]
    for (i = 2; i <= k; i++) { x = s[i]; for (j = i - 1; j >= 1 && s[j] > x; j--) s[j + 1] = s[j]; s[j + 1] = x }
    return k
}

# q: the p-quantile (0..1) of the sorted s[1..k], linear between neighbours.
function q(s, k, p,    h, lo) {
    if (k == 1) return s[1]
    h = (k - 1) * p + 1; lo = int(h)
    return (lo >= k) ? s[k] : s[lo] + (h - lo) * (s[lo + 1] - s[lo])
}
