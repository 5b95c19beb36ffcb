// Command gen is the GoChat benchmark load generator: many WebSocket clients in one compiled
// process (gorilla/websocket), driven by a JSON spec that bench/run.py writes.
//
// Modes
//
//	traffic  connect every client (GoChat: auth frame, wait for "ready"), then run phases:
//	         senders post messages at a fixed aggregate rate (open loop) or as fast as the
//	         server echoes them back (closed loop, `window` messages in flight per sender).
//	         Every body embeds the send time; receivers split frames on "\n" and record
//	         send->deliver latency; GoChat acks carry the send time as their request id.
//	idle     connect (and authenticate) every client, print "READY <ok> <failed>", hold the
//	         sockets until stdin closes.
//	storm    every client connects at once, authenticates, sends a sync with its cursor and
//	         waits for the missed messages; reports the time until the last one caught up.
//
// Protocols: "gochat" (auth frame, message.send, JSON lines) and "plain" (the peers: a text
// frame is broadcast as-is to every socket of the room, ?room=<name>).
//
// Results are one JSON object on stdout; progress goes to stderr, including the lines
// "MEASURE start <phase>" / "MEASURE end <phase>" that run.py uses to sample CPU usage.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"math/bits"
	"math/rand"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
)

// ---------------------------------------------------------------------------- spec

type ClientSpec struct {
	Token  string `json:"token"`
	Room   string `json:"room"`
	Cursor int64  `json:"cursor"` // storm: the pos the client holds before the missed messages
}

type PhaseSpec struct {
	Name      string  `json:"name"`
	Senders   []int   `json:"senders"`    // indexes into clients
	Rate      float64 `json:"rate"`       // aggregate msg/s; 0 = closed loop
	Window    int     `json:"window"`     // closed loop: messages in flight per sender
	WarmupS   float64 `json:"warmup_s"`   // sent, delivered, not measured
	DurationS float64 `json:"duration_s"` // measured window
	DrainS    float64 `json:"drain_s"`    // max wait for stragglers after the last send
}

type Spec struct {
	Mode         string       `json:"mode"`
	Proto        string       `json:"proto"`
	URL          string       `json:"url"`
	LocalIPs     []string     `json:"local_ips"`
	Clients      []ClientSpec `json:"clients"`
	ConnectConc  int          `json:"connect_concurrency"`
	ConnectMaxS  float64      `json:"connect_deadline_s"` // give up waiting for the rest after this
	ReadBuffer   int          `json:"read_buffer"`        // per-socket read buffer (bytes)
	SettleS      float64      `json:"settle_s"`
	BodyBytes    int          `json:"body_bytes"`
	Nonce        string       `json:"nonce"`
	Phases       []PhaseSpec  `json:"phases"`
	StormExpect  int          `json:"storm_expect"`
	StormTimeout float64      `json:"storm_timeout_s"`
	StormMarker  string       `json:"storm_marker"`
}

// ---------------------------------------------------------------------------- clock

var base = time.Now()

func mono() int64 { return int64(time.Since(base)) + 1_000_000_000 } // > 0, fits 2**53 for days

// ---------------------------------------------------------------------------- histogram

const subBuckets = 64
const histSize = 128 + 40*subBuckets

// Hist is a log-linear histogram of microseconds (exact below 128 us, then 1.6 % buckets).
type Hist struct {
	counts [histSize]uint64
	max    int64
}

func bucket(us int64) int {
	if us < 0 {
		us = 0
	}
	if us < 128 {
		return int(us)
	}
	e := bits.Len64(uint64(us)) - 7
	i := 128 + (e-1)*subBuckets + int(us>>uint(e)) - subBuckets
	if i >= histSize {
		return histSize - 1
	}
	return i
}

func bucketValue(i int) float64 {
	if i < 128 {
		return float64(i)
	}
	e := (i-128)/subBuckets + 1
	m := (i-128)%subBuckets + subBuckets
	lo := float64(int64(m) << uint(e))
	return lo + float64(int64(1)<<uint(e))/2
}

func (h *Hist) Add(us int64) {
	atomic.AddUint64(&h.counts[bucket(us)], 1)
	for {
		cur := atomic.LoadInt64(&h.max)
		if us <= cur || atomic.CompareAndSwapInt64(&h.max, cur, us) {
			return
		}
	}
}

func (h *Hist) Summary() map[string]float64 {
	var total uint64
	for i := range h.counts {
		total += h.counts[i]
	}
	out := map[string]float64{"count": float64(total)}
	if total == 0 {
		return out
	}
	qs := []struct {
		name string
		q    float64
	}{{"p50_ms", 0.50}, {"p90_ms", 0.90}, {"p99_ms", 0.99}, {"p999_ms", 0.999}}
	var acc uint64
	qi := 0
	var sum float64
	for i := range h.counts {
		sum += float64(h.counts[i]) * bucketValue(i)
	}
	for i := range h.counts {
		acc += h.counts[i]
		for qi < len(qs) && float64(acc) >= qs[qi].q*float64(total) {
			out[qs[qi].name] = bucketValue(i) / 1000
			qi++
		}
	}
	out["mean_ms"] = sum / float64(total) / 1000
	out["max_ms"] = float64(h.max) / 1000
	return out
}

// ---------------------------------------------------------------------------- phases

const maxPhases = 16

type PhaseState struct {
	spec           PhaseSpec
	measureFrom    int64 // mono ns
	measureTo      int64
	sent           int64
	sendErrors     int64
	expected       int64
	delivered      int64 // all deliveries of this phase's messages
	inWindow       int64 // deliveries received inside the measured window (any phase)
	acks           int64
	acksInWindow   int64
	errors         int64
	latency        Hist // send -> deliver, messages sent inside the window
	ackLatency     Hist // send -> ack (GoChat), messages sent inside the window
	creditTimeout  int64
	framesInWindow int64 // text frames received inside the measured window
	bytesInWindow  int64
}

var phases [maxPhases]*PhaseState
var currentPhase int32 = -1
var measuring int32 // 1 while inside the current phase's measured window

// ---------------------------------------------------------------------------- clients

const ringSize = 1024 // > any window

type slot struct {
	n    int64
	left int32
}

type Client struct {
	idx     int
	spec    ClientSpec
	conn    *websocket.Conn
	ready   chan struct{}
	readyOK int32
	credits chan struct{}
	ring    [ringSize]slot // closed loop: deliveries still missing per message in flight
	closed  int32
	// storm
	stormSeen   int
	stormDone   int64
	stormSynced int64
}

var (
	spec        Spec
	clients     []*Client
	roomSize    = map[string]int64{}
	disconnects int64
	authRetries int64
	errorSample []string
	errorMu     sync.Mutex
	framesIn    int64
	linesIn     int64
	bytesIn     int64
)

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[gen %6.2fs] "+format+"\n", append([]any{time.Since(base).Seconds()}, args...)...)
}

func noteError(line []byte) {
	errorMu.Lock()
	if len(errorSample) < 5 {
		s := string(line)
		if len(s) > 300 {
			s = s[:300]
		}
		errorSample = append(errorSample, s)
	}
	errorMu.Unlock()
}

var dialSeq uint64

func dial(c *Client) (*websocket.Conn, error) {
	ip := spec.LocalIPs[int(atomic.AddUint64(&dialSeq, 1))%len(spec.LocalIPs)]
	nd := &net.Dialer{Timeout: 30 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	d := websocket.Dialer{
		NetDialContext:   nd.DialContext,
		HandshakeTimeout: 60 * time.Second,
		ReadBufferSize:   spec.ReadBuffer,
		WriteBufferSize:  4096,
	}
	u := spec.URL
	if spec.Proto == "plain" {
		u = u + "?room=" + url.QueryEscape(c.spec.Room)
	}
	conn, _, err := d.Dial(u, http.Header{})
	return conn, err
}

var prefixAck = []byte(`{"type":"ack"`)
var prefixError = []byte(`{"type":"error"`)
var prefixReady = []byte(`{"type":"ready"`)
var prefixCreated = []byte(`{"type":"message.created"`)
var marker = []byte("BENCH:")
var idKey = []byte(`"id":`)

// parseInt reads a non-negative decimal at b[i:]; returns value and index after it.
func parseInt(b []byte, i int) (int64, int) {
	var v int64
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		v = v*10 + int64(b[i]-'0')
		i++
	}
	return v, i
}

// readLoop handles every frame of one client until the socket closes.
func (c *Client) readLoop(conn *websocket.Conn, ready chan struct{}, wg *sync.WaitGroup) {
	defer wg.Done()
	var buf bytes.Buffer
	var local [maxPhases]struct{ delivered, inWin, acks, acksWin, errs, frames, bytes int64 }
	for {
		_, r, err := conn.NextReader()
		if err != nil {
			if atomic.LoadInt32(&c.closed) == 0 {
				if atomic.LoadInt32(&c.readyOK) == 0 {
					noteError([]byte("closed before ready: " + err.Error()))
				} else {
					atomic.AddInt64(&disconnects, 1)
				}
			}
			select {
			case <-ready:
			default:
				close(ready)
			}
			return
		}
		buf.Reset()
		if _, err := buf.ReadFrom(r); err != nil {
			continue
		}
		data := buf.Bytes()
		now := mono()
		atomic.AddInt64(&framesIn, 1)
		atomic.AddInt64(&bytesIn, int64(len(data)))
		inWin := atomic.LoadInt32(&measuring) == 1
		cur := atomic.LoadInt32(&currentPhase)
		if inWin && cur >= 0 {
			local[cur].frames++
			local[cur].bytes += int64(len(data))
		}
		var lines int64
		for len(data) > 0 {
			nl := bytes.IndexByte(data, '\n')
			var line []byte
			if nl < 0 {
				line, data = data, nil
			} else {
				line, data = data[:nl], data[nl+1:]
			}
			lines++
			if spec.Proto == "gochat" && len(line) > 0 && line[0] == '{' {
				if bytes.HasPrefix(line, prefixAck) {
					k := bytes.Index(line, idKey)
					if k >= 0 {
						id, _ := parseInt(line, k+len(idKey))
						ts, p := id>>4, int(id&15)
						if phases[p] != nil {
							local[p].acks++
							if inWin {
								local[p].acksWin++
							}
							ps := phases[p]
							if ts >= ps.measureFrom && ts < ps.measureTo {
								ps.ackLatency.Add((now - ts) / 1000)
							}
						}
					}
					continue
				}
				if bytes.HasPrefix(line, prefixError) {
					noteError(line)
					if cur >= 0 {
						local[cur].errs++
					}
					c.giveCredit()
					continue
				}
				if bytes.HasPrefix(line, prefixReady) {
					if atomic.CompareAndSwapInt32(&c.readyOK, 0, 1) {
						close(ready)
					}
					continue
				}
			}
			k := bytes.Index(line, marker)
			if k < 0 {
				continue
			}
			// BENCH:<phase>:<ts>:<sender>:<n>:
			p, i := parseInt(line, k+len(marker))
			ts, i := parseInt(line, i+1)
			sender, i := parseInt(line, i+1)
			seq, _ := parseInt(line, i+1)
			if p < 0 || p >= maxPhases || phases[p] == nil {
				continue
			}
			ps := phases[p]
			local[p].delivered++
			if inWin && cur >= 0 {
				local[cur].inWin++
			}
			if ts >= ps.measureFrom && ts < ps.measureTo {
				ps.latency.Add((now - ts) / 1000)
			}
			// Closed loop: a sender's credit returns once EVERY member got its message, so the
			// load adapts to the slowest receiver instead of overrunning it.
			if int32(p) == cur && int(sender) < len(clients) {
				owner := clients[sender]
				sl := &owner.ring[seq%ringSize]
				if atomic.LoadInt64(&sl.n) == seq && atomic.AddInt32(&sl.left, -1) == 0 {
					owner.giveCredit()
				}
			}
		}
		atomic.AddInt64(&linesIn, lines)
		for p := range local {
			l := &local[p]
			if l.delivered|l.inWin|l.acks|l.acksWin|l.errs|l.frames == 0 {
				continue
			}
			ps := phases[p]
			atomic.AddInt64(&ps.delivered, l.delivered)
			atomic.AddInt64(&ps.inWindow, l.inWin)
			atomic.AddInt64(&ps.acks, l.acks)
			atomic.AddInt64(&ps.acksInWindow, l.acksWin)
			atomic.AddInt64(&ps.errors, l.errs)
			atomic.AddInt64(&ps.framesInWindow, l.frames)
			atomic.AddInt64(&ps.bytesInWindow, l.bytes)
			*l = struct{ delivered, inWin, acks, acksWin, errs, frames, bytes int64 }{}
		}
	}
}

func (c *Client) giveCredit() {
	select {
	case c.credits <- struct{}{}:
	default:
	}
}

// ---------------------------------------------------------------------------- connect

func connectAll(auth bool) (ok, failed int) {
	conc := spec.ConnectConc
	if conc <= 0 {
		conc = 200
	}
	sem := make(chan struct{}, conc)
	var wg sync.WaitGroup
	var okN, failN int64
	var readers sync.WaitGroup
	done := make(chan struct{})
	go func() {
		launchAll(conc, sem, &wg, &okN, &failN, &readers, auth)
		wg.Wait()
		close(done)
	}()
	deadline := spec.ConnectMaxS
	if deadline <= 0 {
		deadline = 3600
	}
	select {
	case <-done:
	case <-time.After(time.Duration(deadline * float64(time.Second))):
		logf("connect deadline: %d ok, %d failed, the rest still pending", atomic.LoadInt64(&okN), atomic.LoadInt64(&failN))
		return int(atomic.LoadInt64(&okN)), len(clients) - int(atomic.LoadInt64(&okN))
	}
	return int(okN), int(failN)
}

func launchAll(conc int, sem chan struct{}, wg *sync.WaitGroup, okN, failN *int64, readers *sync.WaitGroup, auth bool) {
	for _, c := range clients {
		wg.Add(1)
		sem <- struct{}{}
		go func(c *Client) {
			defer wg.Done()
			defer func() { <-sem }()
			// Like a real client, a socket the server closed during authentication reconnects.
			for try_ := 0; try_ < 3; try_++ {
				if try_ > 0 {
					atomic.AddInt64(&authRetries, 1)
					time.Sleep(time.Duration(250*try_) * time.Millisecond)
					c.ready = make(chan struct{})
				}
				var conn *websocket.Conn
				var err error
				for attempt := 0; attempt < 5; attempt++ {
					conn, err = dial(c)
					if err == nil {
						break
					}
					time.Sleep(time.Duration(200*(attempt+1)) * time.Millisecond)
				}
				if err != nil {
					noteError([]byte("dial: " + err.Error()))
					atomic.AddInt64(failN, 1)
					return
				}
				c.conn = conn
				readers.Add(1)
				go c.readLoop(conn, c.ready, readers)
				if !auth {
					atomic.StoreInt32(&c.readyOK, 1)
					atomic.AddInt64(okN, 1)
					return
				}
				msg := fmt.Sprintf(`{"type":"auth","token":%q}`, c.spec.Token)
				if err := conn.WriteMessage(websocket.TextMessage, []byte(msg)); err == nil {
					select {
					case <-c.ready:
					case <-time.After(60 * time.Second):
					}
				}
				if atomic.LoadInt32(&c.readyOK) == 1 {
					atomic.AddInt64(okN, 1)
					return
				}
				conn.Close() // the server closed it (or will): try again
			}
			atomic.AddInt64(failN, 1)
		}(c)
	}
}

// ---------------------------------------------------------------------------- traffic

var padding = bytes.Repeat([]byte("x"), 65536)

func (c *Client) payload(phase int, n int64) ([]byte, int64) {
	ts := mono()
	body := make([]byte, 0, spec.BodyBytes+64)
	body = append(body, marker...)
	body = strconv.AppendInt(body, int64(phase), 10)
	body = append(body, ':')
	body = strconv.AppendInt(body, ts, 10)
	body = append(body, ':')
	body = strconv.AppendInt(body, int64(c.idx), 10)
	body = append(body, ':')
	body = strconv.AppendInt(body, n, 10)
	body = append(body, ':')
	if pad := spec.BodyBytes - len(body); pad > 0 {
		body = append(body, padding[:pad]...)
	}
	if spec.Proto == "plain" {
		return body, ts
	}
	out := make([]byte, 0, len(body)+160)
	out = append(out, `{"type":"message.send","id":`...)
	out = strconv.AppendInt(out, ts<<4|int64(phase), 10) // the ack echoes it: send time + phase
	out = append(out, `,"conversation_id":"`...)
	out = append(out, c.spec.Room...)
	out = append(out, `","client_msg_id":"b`...)
	out = append(out, spec.Nonce...)
	out = append(out, '-')
	out = strconv.AppendInt(out, int64(phase), 10)
	out = append(out, '-')
	out = strconv.AppendInt(out, n, 10)
	out = append(out, `","body":"`...)
	out = append(out, body...)
	out = append(out, `"}`...)
	return out, ts
}

func runPhase(p int, ps *PhaseState) {
	sp := ps.spec
	senders := make([]*Client, 0, len(sp.Senders))
	for _, i := range sp.Senders {
		if i < len(clients) && clients[i].conn != nil && atomic.LoadInt32(&clients[i].readyOK) == 1 {
			senders = append(senders, clients[i])
		}
	}
	if len(senders) == 0 {
		logf("phase %s: no live senders", sp.Name)
		return
	}
	start := mono()
	warm := int64(sp.WarmupS * 1e9)
	dur := int64(sp.DurationS * 1e9)
	ps.measureFrom = start + warm
	ps.measureTo = start + warm + dur
	end := ps.measureTo
	atomic.StoreInt32(&currentPhase, int32(p))
	logf("phase %s: %d senders, rate %.0f, window %d", sp.Name, len(senders), sp.Rate, sp.Window)
	go func() {
		time.Sleep(time.Duration(warm))
		atomic.StoreInt32(&measuring, 1)
		fmt.Fprintf(os.Stderr, "MEASURE start %s\n", sp.Name)
		time.Sleep(time.Duration(dur))
		atomic.StoreInt32(&measuring, 0)
		fmt.Fprintf(os.Stderr, "MEASURE end %s\n", sp.Name)
	}()
	var wg sync.WaitGroup
	for si, c := range senders {
		wg.Add(1)
		go func(si int, c *Client) {
			defer wg.Done()
			var n int64
			if sp.Rate > 0 {
				interval := float64(len(senders)) / sp.Rate * 1e9
				offset := float64(si) / sp.Rate * 1e9
				for k := int64(0); ; k++ {
					at := start + int64(offset+float64(k)*interval)
					if at >= end {
						return
					}
					if d := at - mono(); d > 0 {
						time.Sleep(time.Duration(d))
					}
					if !c.send(p, ps, &n) {
						return
					}
				}
			}
			w := sp.Window
			if w <= 0 {
				w = 1
			}
		drain:
			for {
				select {
				case <-c.credits:
				default:
					break drain
				}
			}
			for i := 0; i < w && i < cap(c.credits) && i < ringSize/2; i++ {
				c.credits <- struct{}{}
			}
			for mono() < end {
				select {
				case <-c.credits:
				case <-time.After(2 * time.Second):
					atomic.AddInt64(&ps.creditTimeout, 1)
				}
				if mono() >= end {
					return
				}
				if !c.send(p, ps, &n) {
					return
				}
			}
		}(si, c)
	}
	wg.Wait()
	// Drain: wait until every expected delivery (and ack) arrived, or no progress.
	deadline := time.Now().Add(time.Duration(sp.DrainS * float64(time.Second)))
	last := atomic.LoadInt64(&ps.delivered)
	lastMove := time.Now()
	for time.Now().Before(deadline) {
		d := atomic.LoadInt64(&ps.delivered)
		acksDone := spec.Proto != "gochat" || atomic.LoadInt64(&ps.acks)+atomic.LoadInt64(&ps.errors) >= atomic.LoadInt64(&ps.sent)
		if d >= atomic.LoadInt64(&ps.expected) && acksDone {
			break
		}
		if d != last {
			last, lastMove = d, time.Now()
		} else if time.Since(lastMove) > 3*time.Second {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	for atomic.LoadInt32(&measuring) == 1 {
		time.Sleep(10 * time.Millisecond)
	}
}

func (c *Client) send(p int, ps *PhaseState, n *int64) bool {
	msg, _ := c.payload(p, *n)
	sl := &c.ring[*n%ringSize]
	atomic.StoreInt64(&sl.n, -1)
	atomic.StoreInt32(&sl.left, int32(roomSize[c.spec.Room]))
	atomic.StoreInt64(&sl.n, *n)
	*n++
	if err := c.conn.WriteMessage(websocket.TextMessage, msg); err != nil {
		atomic.AddInt64(&ps.sendErrors, 1)
		return false
	}
	atomic.AddInt64(&ps.sent, 1)
	atomic.AddInt64(&ps.expected, roomSize[c.spec.Room])
	return true
}

func phaseResult(ps *PhaseState) map[string]any {
	win := ps.spec.DurationS
	lost := ps.expected - ps.delivered
	res := map[string]any{
		"name":              ps.spec.Name,
		"senders":           len(ps.spec.Senders),
		"rate_in":           ps.spec.Rate,
		"window":            ps.spec.Window,
		"duration_s":        win,
		"sent":              ps.sent,
		"send_errors":       ps.sendErrors,
		"expected":          ps.expected,
		"delivered":         ps.delivered,
		"lost":              lost,
		"loss_ratio":        safeDiv(float64(lost), float64(ps.expected)),
		"deliveries_per_s":  float64(ps.inWindow) / win,
		"acks":              ps.acks,
		"acks_per_s":        float64(ps.acksInWindow) / win,
		"error_replies":     ps.errors,
		"credit_timeouts":   ps.creditTimeout,
		"frames_per_s":      float64(ps.framesInWindow) / win,
		"bytes_per_s":       float64(ps.bytesInWindow) / win,
		"latency":           ps.latency.Summary(),
		"ack_latency":       ps.ackLatency.Summary(),
		"msgs_in_per_s_est": float64(ps.sent) / (ps.spec.WarmupS + ps.spec.DurationS),
	}
	return res
}

func safeDiv(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// ---------------------------------------------------------------------------- storm

var stormStart int64
var stormCaught int64

// stormClient reconnects like a real client until it has caught up or the storm times out:
// dial, auth and sync pipelined, count the missed messages; on a close, back off and retry.
func (c *Client) stormClient(deadline int64, dialFail, reconnects *int64) {
	auth := []byte(fmt.Sprintf(`{"type":"auth","token":%q}`, c.spec.Token))
	syncMsg := []byte(fmt.Sprintf(`{"type":"sync","id":1,"cursors":{%q:%d}}`, c.spec.Room, c.spec.Cursor))
	marker := []byte(spec.StormMarker)
	var buf bytes.Buffer
	for attempt := 0; mono() < deadline; attempt++ {
		if attempt > 0 {
			atomic.AddInt64(reconnects, 1)
			shift := attempt - 1
			if shift > 4 {
				shift = 4
			}
			backoff := 250 * time.Millisecond << uint(shift)
			time.Sleep(backoff/2 + time.Duration(rand.Int63n(int64(backoff))))
		}
		conn, err := dial(c)
		if err != nil {
			atomic.AddInt64(dialFail, 1)
			noteError([]byte("dial: " + err.Error()))
			continue
		}
		if conn.WriteMessage(websocket.TextMessage, auth) != nil || conn.WriteMessage(websocket.TextMessage, syncMsg) != nil {
			conn.Close()
			continue
		}
		seen := 0
		for mono() < deadline {
			_, r, err := conn.NextReader()
			if err != nil {
				noteError([]byte("storm socket closed: " + err.Error()))
				break
			}
			buf.Reset()
			if _, err := buf.ReadFrom(r); err != nil {
				break
			}
			now := mono()
			data := buf.Bytes()
			for len(data) > 0 {
				var line []byte
				if nl := bytes.IndexByte(data, '\n'); nl >= 0 {
					line, data = data[:nl], data[nl+1:]
				} else {
					line, data = data, nil
				}
				if bytes.HasPrefix(line, prefixError) {
					noteError(line)
				} else if bytes.HasPrefix(line, prefixCreated) && bytes.Contains(line, marker) {
					seen++
				}
			}
			if seen > c.stormSeen {
				c.stormSeen = seen
			}
			if seen >= spec.StormExpect {
				atomic.StoreInt64(&c.stormDone, now)
				atomic.AddInt64(&stormCaught, 1)
				c.conn = conn
				go func() { // stay connected, keep reading (presence and pings), like a client
					for {
						if _, _, err := conn.NextReader(); err != nil {
							return
						}
					}
				}()
				return
			}
		}
		conn.Close()
	}
}

func runStorm() map[string]any {
	var wg sync.WaitGroup
	var dialFail, reconnects int64
	stormStart = mono()
	deadlineNs := stormStart + int64(spec.StormTimeout*1e9)
	fmt.Fprintf(os.Stderr, "MEASURE start storm\n")
	for _, c := range clients {
		wg.Add(1)
		go func(c *Client) {
			defer wg.Done()
			c.stormClient(deadlineNs, &dialFail, &reconnects)
		}(c)
	}
	go func() { wg.Wait() }()
	deadline := time.Now().Add(time.Duration(spec.StormTimeout * float64(time.Second)))
	for time.Now().Before(deadline) && atomic.LoadInt64(&stormCaught) < int64(len(clients)) {
		time.Sleep(10 * time.Millisecond)
	}
	fmt.Fprintf(os.Stderr, "MEASURE end storm\n")
	var h Hist
	var last int64
	var missing int64
	caught := 0
	for _, c := range clients {
		d := atomic.LoadInt64(&c.stormDone)
		if d > 0 {
			caught++
			h.Add((d - stormStart) / 1000)
			if d > last {
				last = d
			}
		} else {
			missing += int64(spec.StormExpect - c.stormSeen)
		}
	}
	res := map[string]any{
		"clients":                 len(clients),
		"caught_up":               caught,
		"missing_messages":        missing,
		"expected_per_client":     spec.StormExpect,
		"time_to_all_caught_up_s": float64(last-stormStart) / 1e9,
		"per_client_catch_up":     h.Summary(),
		"dial_failures":           atomic.LoadInt64(&dialFail),
		"reconnects":              atomic.LoadInt64(&reconnects),
		"disconnects":             atomic.LoadInt64(&disconnects),
	}
	if caught < len(clients) {
		res["time_to_all_caught_up_s"] = nil
	}
	return res
}

// ---------------------------------------------------------------------------- main

func cpuSeconds() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Utime.Sec+ru.Stime.Sec) + float64(ru.Utime.Usec+ru.Stime.Usec)/1e6
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: gen spec.json")
		os.Exit(2)
	}
	raw, err := os.ReadFile(os.Args[1])
	if err != nil {
		panic(err)
	}
	if err := json.Unmarshal(raw, &spec); err != nil {
		panic(err)
	}
	if len(spec.LocalIPs) == 0 {
		spec.LocalIPs = []string{"127.0.0.1"}
	}
	if spec.BodyBytes <= 0 {
		spec.BodyBytes = 100
	}
	if spec.ReadBuffer <= 0 {
		spec.ReadBuffer = 4096
		if spec.Mode == "traffic" {
			// Fewer read syscalls per frame when frames pile up: the generator must not be the
			// bottleneck for servers that send one frame per message.
			spec.ReadBuffer = 65536
		}
	}
	clients = make([]*Client, len(spec.Clients))
	for i, cs := range spec.Clients {
		clients[i] = &Client{idx: i, spec: cs, ready: make(chan struct{}), credits: make(chan struct{}, 1024)}
		roomSize[cs.Room]++
	}
	out := map[string]any{"mode": spec.Mode, "proto": spec.Proto, "clients": len(clients)}
	cpu0 := cpuSeconds()
	switch spec.Mode {
	case "storm":
		out["storm"] = runStorm()
	case "idle", "traffic":
		t0 := time.Now()
		ok, failed := connectAll(spec.Proto == "gochat")
		out["connected"] = ok
		out["connect_failed"] = failed
		out["connect_s"] = time.Since(t0).Seconds()
		logf("connected %d, failed %d in %.1fs", ok, failed, time.Since(t0).Seconds())
		if spec.Mode == "idle" {
			fmt.Printf("READY %d %d\n", ok, failed)
			os.Stdout.Sync()
			in := bufio.NewReader(os.Stdin)
			in.ReadString('\n')
			out["disconnects"] = atomic.LoadInt64(&disconnects)
			break
		}
		time.Sleep(time.Duration(spec.SettleS * float64(time.Second)))
		results := []any{}
		for p, sp := range spec.Phases {
			if p >= maxPhases {
				break
			}
			phases[p] = &PhaseState{spec: sp}
			cpuP := cpuSeconds()
			runPhase(p, phases[p])
			r := phaseResult(phases[p])
			r["gen_cpu_s"] = cpuSeconds() - cpuP
			results = append(results, r)
			logf("phase %s: %.0f deliveries/s, lost %d, p99 %.1f ms", sp.Name,
				r["deliveries_per_s"], r["lost"], phases[p].latency.Summary()["p99_ms"])
		}
		out["phases"] = results
		out["disconnects"] = atomic.LoadInt64(&disconnects)
	default:
		panic("unknown mode " + spec.Mode)
	}
	out["gen_cpu_s"] = cpuSeconds() - cpu0
	out["auth_retries"] = atomic.LoadInt64(&authRetries)
	out["frames_in"] = atomic.LoadInt64(&framesIn)
	out["lines_in"] = atomic.LoadInt64(&linesIn)
	out["bytes_in"] = atomic.LoadInt64(&bytesIn)
	errorMu.Lock()
	out["error_sample"] = errorSample
	errorMu.Unlock()
	for _, c := range clients {
		atomic.StoreInt32(&c.closed, 1)
	}
	enc, _ := json.Marshal(out)
	os.Stdout.Write(append(enc, '\n'))
	os.Stdout.Sync()
	// Keep the sockets open until told (stdin closes): run.py stops the server first, so the
	// next measurement does not overlap this server's disconnect work.
	if spec.Mode != "idle" {
		bufio.NewReader(os.Stdin).ReadString('\n')
	}
}
