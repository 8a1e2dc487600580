package tests

// Attacks on the event-loop semantics a guest relies on: timers (order, clearing, unref, the
// exit rule, --max-timers), exit codes and messages between workers, driven by
// testdata/guests/loopatk, whose MODE picks the case and which prints what happened.

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

func init() {
	guestBuilds = append(guestBuilds, guestBuild{"loopatk", "./tests/testdata/guests/loopatk", true})
}

// latRun runs the loopatk guest in mode with one worker (unless flags say otherwise) to its
// end, bounded by 20 s.
func latRun(t *testing.T, mode string, flags ...string) runResult {
	t.Helper()
	args := []string{"run", "--cache-dir", cacheDir, "--workers", "1", "--env", "MODE=" + mode}
	args = append(args, flags...)
	args = append(args, wasm["loopatk"])
	return runWasmloop(t, "", 20*time.Second, args...)
}

func latLines(out string) []string {
	return strings.Split(strings.TrimSuffix(out, "\n"), "\n")
}

func latWant(t *testing.T, r runResult, code int) {
	t.Helper()
	if r.code != code {
		t.Errorf("exit status %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, code, r.stdout, r.stderr)
	}
}

func latSeq(n int) string {
	s := make([]string, n)
	for i := range s {
		s[i] = strconv.Itoa(i)
	}
	return strings.Join(s, " ")
}

// TestLoopAttackSameDueTimeoutsFireInCreationOrder: sixteen SetTimeouts of one delay started
// in one callback are due at the same loop time (the loop's clock is read once per turn);
// Node runs them in the order they were created. The loop's heap (host/internal/loop/
// timer.go, timerHeap.Less) orders by deadline alone, and container/heap is not stable.
func TestLoopAttackSameDueTimeoutsFireInCreationOrder(t *testing.T) {
	t.Parallel()
	r := latRun(t, "order")
	latWant(t, r, 0)
	want := latSeq(16)
	for _, prefix := range []string{"order main: ", "order zero: "} {
		found := false
		for _, l := range latLines(r.stdout) {
			if got, ok := strings.CutPrefix(l, prefix); ok {
				found = true
				if got != want {
					t.Errorf("%s%s, want %s (creation order)", prefix, got, want)
				}
			}
		}
		if !found {
			t.Errorf("no %q line:\n%s", prefix, r.stdout)
		}
	}
}

// TestLoopAttackIntervalsOfOnePeriodKeepTheirOrder: three SetIntervals of one period started
// together tick in the order they were created on every round, as in Node; an interval is
// re-armed at now+interval, so all three share a deadline again each round.
func TestLoopAttackIntervalsOfOnePeriodKeepTheirOrder(t *testing.T) {
	t.Parallel()
	r := latRun(t, "intervalorder")
	latWant(t, r, 0)
	rounds := 0
	for _, l := range latLines(r.stdout) {
		if got, ok := strings.CutPrefix(l, "round: "); ok {
			rounds++
			if got != "0 1 2" {
				t.Errorf("round %d ran %s, want 0 1 2", rounds, got)
			}
		}
	}
	if rounds != 6 {
		t.Errorf("%d rounds, want 6:\n%s", rounds, r.stdout)
	}
}

// TestLoopAttackTimerRefusedByMaxTimersIsNotSilent: past --max-timers, timer_start answers
// ELIMIT (ABI.md §3), but the SDK's SetTimeout (guest-sdk/go/timers.go, startTimer) turns it
// into a Timer that never fires, with no error the program can see and no line on stderr:
// a program waiting for it just never goes on. Something must say so.
func TestLoopAttackTimerRefusedByMaxTimersIsNotSilent(t *testing.T) {
	t.Parallel()
	r := latRun(t, "limit", "--max-timers", "5")
	latWant(t, r, 0)
	if !strings.Contains(r.stdout, "started 6") || !strings.Contains(r.stdout, "fired 4") {
		t.Fatalf("the guest did not run as expected:\n%s", r.stdout)
	}
	if strings.Contains(r.stdout, "fired 5") {
		return // the sixth timer was honoured after all: nothing is lost
	}
	if !strings.Contains(r.stderr, "max-timers") && !strings.Contains(strings.ToLower(r.stderr), "too many timers") {
		t.Errorf("the sixth timer (over --max-timers 5) silently never fired; stderr says nothing about it:\n%s", r.stderr)
	}
}

// TestLoopAttackClearTimeoutEdgesHold: a timeout cleared from its own callback and again after
// its slot was reused does not cancel the new timer (generations); a timer cleared from
// another callback before it is due does not run; an interval that clears itself stops and the process
// exits; ClearTimeout(nil) and a double clear are harmless.
func TestLoopAttackClearTimeoutEdgesHold(t *testing.T) {
	t.Parallel()
	r := latRun(t, "clear")
	latWant(t, r, 0)
	for _, want := range []string{"self fired", "fresh fired", "killer fired", "interval 1", "interval 2", "interval 3"} {
		if strings.Count(r.stdout, want+"\n") != 1 {
			t.Errorf("%q not printed exactly once:\n%s", want, r.stdout)
		}
	}
	for _, not := range []string{"victim fired", "cleared fired", "interval 4"} {
		if strings.Contains(r.stdout, not) {
			t.Errorf("%q printed:\n%s", not, r.stdout)
		}
	}
}

// TestLoopAttackUnrefAndTheExitRule: only an unreferenced timer left → the process exits at
// once, without running it; an unref'd timer still fires while a referenced one keeps the
// process alive, and Unref().Ref() is referenced; an interval unref'd from its own callback
// lets the process exit; a closed listener with only an unref'd interval exits; Exit(0) with
// a referenced 30 s timer pending exits at once.
func TestLoopAttackUnrefAndTheExitRule(t *testing.T) {
	t.Parallel()
	t.Run("unref", func(t *testing.T) {
		t.Parallel()
		r := latRun(t, "unref")
		latWant(t, r, 0)
		if r.stdout != "main done\n" {
			t.Errorf("stdout %q, want only main done", r.stdout)
		}
		if r.elapsed > 8*time.Second {
			t.Errorf("exited after %v: the 10 s unref'd timer held it", r.elapsed)
		}
	})
	t.Run("unrefref", func(t *testing.T) {
		t.Parallel()
		r := latRun(t, "unrefref")
		latWant(t, r, 0)
		if want := "unref'd fired\nreref'd fired\nref'd fired\n"; r.stdout != want {
			t.Errorf("stdout %q, want %q", r.stdout, want)
		}
	})
	t.Run("intervalunref", func(t *testing.T) {
		t.Parallel()
		r := latRun(t, "intervalunref")
		latWant(t, r, 0)
		if r.stdout != "tick 1\ntick 2\n" {
			t.Errorf("stdout %q, want two ticks", r.stdout)
		}
	})
	t.Run("listenclose", func(t *testing.T) {
		t.Parallel()
		r := latRun(t, "listenclose", "--env", "PORT="+strconv.Itoa(freePort(t)))
		latWant(t, r, 0)
		if r.stdout != "closing: <nil>\n" {
			t.Errorf("stdout %q", r.stdout)
		}
	})
	t.Run("exitpending", func(t *testing.T) {
		t.Parallel()
		r := latRun(t, "exitpending")
		latWant(t, r, 0)
		if r.stdout != "" || r.elapsed > 15*time.Second {
			t.Errorf("stdout %q after %v", r.stdout, r.elapsed)
		}
	})
}

// TestLoopAttackExitCodesFromCallbacks: Exit(n) from a timer ends the process with n, before
// a timer due 1 ms later runs; codes outside 0–255 give 255 and say so (README).
func TestLoopAttackExitCodesFromCallbacks(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ code, want int }{{7, 7}, {300, 255}, {-1, 255}} {
		t.Run(strconv.Itoa(c.code), func(t *testing.T) {
			t.Parallel()
			r := latRun(t, "exit", "--env", "CODE="+strconv.Itoa(c.code))
			latWant(t, r, c.want)
			if strings.Contains(r.stdout, "after exit") {
				t.Errorf("a timer ran after Exit:\n%s", r.stdout)
			}
			if c.want != c.code && !strings.Contains(r.stderr, "outside 0–255") {
				t.Errorf("stderr does not explain the 255:\n%s", r.stderr)
			}
		})
	}
}

// TestLoopAttackNegativeDelaysFireOnce: SetTimeout with a negative or math.MinInt64 delay
// fires (on a later turn), and SetInterval with a negative period ticks (as 1 ms).
func TestLoopAttackNegativeDelaysFireOnce(t *testing.T) {
	t.Parallel()
	r := latRun(t, "negative")
	latWant(t, r, 0)
	for _, want := range []string{"negative fired", "minint fired", "negative interval ticked 3"} {
		if strings.Count(r.stdout, want+"\n") != 1 {
			t.Errorf("%q not printed once:\n%s", want, r.stdout)
		}
	}
}

// TestLoopAttackMessageEdgesBetweenTwoWorkers: 0 bytes and exactly MaxMessage arrive whole;
// MaxMessage+1, a worker out of range or negative, and an oversized Broadcast are EINVAL by
// name; a message to oneself arrives; 200 messages from one sender arrive in order.
func TestLoopAttackMessageEdgesBetweenTwoWorkers(t *testing.T) {
	t.Parallel()
	r := latRun(t, "msg", "--workers", "2", "--env", "PORT="+strconv.Itoa(freePort(t)))
	latWant(t, r, 0)
	for _, want := range []string{
		"empty nil", "max nil", "over EINVAL", "range EINVAL", "negative EINVAL", "bcast over EINVAL", "done nil",
		"seq 200 bad 0 ", "empty true max true self true",
	} {
		if !strings.Contains(r.stdout, want+"\n") {
			t.Errorf("no %q line:\n%s", want, r.stdout)
		}
	}
	for _, l := range latLines(r.stdout) {
		if f := strings.Fields(l); len(f) == 3 && f[0] == "seq" && strings.HasPrefix(f[2], "E") {
			t.Errorf("a sequenced post failed: %s", l)
		}
	}
}

// TestLoopAttackOsExitInCallbackSaysWhatToDo: os.Exit(6) from a timer is, by ABI.md §3, a
// crash (the instance is replaced, and after --max-restarts the process exits 1, not 6). A
// Go developer writes os.Exit out of habit; the host's line (host/internal/loop/instance.go,
// "the guest died (proc_exit N in a callback)") should say what to do: wasmloop.Exit.
func TestLoopAttackOsExitInCallbackSaysWhatToDo(t *testing.T) {
	t.Parallel()
	r := latRun(t, "osexittimer", "--max-restarts", "1")
	if r.code == 0 {
		t.Errorf("exit status 0 after os.Exit(6) in a callback")
	}
	if !strings.Contains(r.stderr, "proc_exit 6") {
		t.Fatalf("stderr does not report the proc_exit:\n%s", r.stderr)
	}
	if !strings.Contains(r.stderr, "wasmloop.Exit") {
		t.Errorf("the proc_exit line does not say to call wasmloop.Exit to end the process:\n%s", r.stderr)
	}
}

// TestLoopAttackGiveUpIsReportedOnce: when a guest fails --max-restarts+1 times in a row the
// host logs "the guest failed N times in a row without serving anything; giving up"
// (host/internal/loop/instance.go, replace) and then hands the same fact to giveUp as the
// run's error, which the CLI prints again: stderr says it twice.
func TestLoopAttackGiveUpIsReportedOnce(t *testing.T) {
	t.Parallel()
	r := latRun(t, "osexittimer", "--max-restarts", "1")
	latWant(t, r, 1)
	if n := strings.Count(r.stderr, "the guest failed 2 times in a row"); n != 1 {
		t.Errorf("the give-up is on stderr %d times, want once:\n%s", n, r.stderr)
	}
}

// TestLoopAttackMessageToWorkerNotStartedYetArrives: ABI.md §3 (post): "a worker not started
// yet receives its messages once it starts". Worker 0 posts to worker 1 in its top-level code,
// before it listens (worker 1 starts only then); worker 1's OnMessage, set by its own main,
// gets it and answers. The guest gives up after 5 s (exit 3) if it never does.
func TestLoopAttackMessageToWorkerNotStartedYetArrives(t *testing.T) {
	t.Parallel()
	r := latRun(t, "msgearly", "--workers", "2", "--env", "PORT="+strconv.Itoa(freePort(t)))
	latWant(t, r, 0)
	for _, want := range []string{"early post: <nil>", "got early"} {
		if !strings.Contains(r.stdout, want+"\n") {
			t.Errorf("no %q line:\n%s", want, r.stdout)
		}
	}
}
