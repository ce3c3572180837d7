package whip

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// codec is one codec configuration ingest records from WHIP.
type codec struct {
	kind      webrtc.RTPCodecType
	mime      string
	clockRate uint32
	channels  uint16
	fmtp      string
	// matches reports whether an offered fmtp line is this configuration.
	matches func(fmtp map[string]string) bool
}

// h264Profile matches H.264 in packetization mode 1 (RFC 6184 Section
// 8.1: FU-A and STAP-A, what every WebRTC sender uses) with a
// profile-level-id of the given profile_idc and constraint flags (its first
// four hex digits); the level is free.
func h264Profile(profile string) func(map[string]string) bool {
	return func(f map[string]string) bool {
		plid := strings.ToLower(f["profile-level-id"])
		return f["packetization-mode"] == "1" && len(plid) == 6 && plid[:4] == profile
	}
}

func paramIs(key, want, dflt string) func(map[string]string) bool {
	return func(f map[string]string) bool {
		v, ok := f[key]
		if !ok {
			v = dflt
		}
		return v == want
	}
}

// Codecs ingest takes, best first: what fragmented MP4 carries and the
// segmenter writes without decoding. H.264 first, as every player of the
// recordings plays it; constrained baseline (42e0) before baseline (4200),
// constrained high (640c), main (4d00) and high (6400). Then VP9 profile 0
// (8-bit 4:2:0) and 2 (10-bit), and AV1 main profile. Audio is Opus.
var (
	videoCodecs = []codec{
		h264Codec("42e01f", "42e0"),
		h264Codec("42001f", "4200"),
		h264Codec("42c01f", "42c0"),
		h264Codec("640c1f", "640c"),
		h264Codec("4d001f", "4d00"),
		h264Codec("64001f", "6400"),
		{kind: webrtc.RTPCodecTypeVideo, mime: webrtc.MimeTypeVP9, clockRate: 90000, fmtp: "profile-id=0", matches: paramIs("profile-id", "0", "0")},
		{kind: webrtc.RTPCodecTypeVideo, mime: webrtc.MimeTypeVP9, clockRate: 90000, fmtp: "profile-id=2", matches: paramIs("profile-id", "2", "0")},
		{kind: webrtc.RTPCodecTypeVideo, mime: webrtc.MimeTypeAV1, clockRate: 90000, fmtp: "level-idx=5;profile=0;tier=0", matches: paramIs("profile", "0", "0")},
	}
	audioCodecs = []codec{
		{kind: webrtc.RTPCodecTypeAudio, mime: webrtc.MimeTypeOpus, clockRate: 48000, channels: 2, fmtp: "minptime=10;useinbandfec=1",
			matches: func(map[string]string) bool { return true }},
	}
)

func h264Codec(plid, profile string) codec {
	return codec{kind: webrtc.RTPCodecTypeVideo, mime: webrtc.MimeTypeH264, clockRate: 90000,
		fmtp: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=" + plid, matches: h264Profile(profile)}
}

// supportedCodecsText names what an offer must contain, for refusals.
const supportedCodecsText = "nokstream records H.264 (packetization-mode=1), VP9 or AV1 video and Opus audio"

// offerTrack is a track the offer sends, with the codec chosen for it.
type offerTrack struct {
	mid      string
	kind     webrtc.RTPCodecType
	codec    codec
	pt       uint8
	channels int // Opus: 2 when the offer says stereo, else 1
}

// offer is a parsed and checked WHIP offer.
type offer struct {
	sdp        string // the offer as given to pion: one codec per media section
	tracks     []offerTrack
	candidates int // ICE candidates in the offer
}

// maxRemoteCandidates bounds the ICE candidates a publisher gives a session,
// in its offer and trickled (PATCH) together. A browser on a machine with
// many interfaces gives a few dozen; each one held costs memory and sends
// connectivity checks to the address it names, so a publisher may not add
// them without end (thousands from one session: megabytes held, and ingest
// sending STUN to every address named).
const maxRemoteCandidates = 100

// httpError is a refusal with its HTTP status, the reason sent to the
// client and the bounded reason label of the refused metric.
type httpError struct {
	status int
	label  string
	msg    string
}

func (e *httpError) Error() string { return e.msg }

func refusal(status int, label, format string, args ...any) *httpError {
	return &httpError{status: status, label: label, msg: fmt.Sprintf(format, args...)}
}

// parseOffer checks a WHIP offer and chooses a codec for each media section
// it sends. RFC 9725 has the endpoint refuse with 406 an offer whose number
// of audio or video tracks it does not support (here: one of each at
// most); ingest also refuses
// sections it cannot record, so that a publisher learns at once, not from
// an empty recording, that its codec is not taken. The returned offer keeps
// only the chosen codec in each section, so that the publisher cannot send
// another one and the answer names exactly what is recorded.
func parseOffer(b []byte) (*offer, *httpError) {
	var sd sdp.SessionDescription
	if err := sd.Unmarshal(b); err != nil {
		return nil, refusal(http.StatusBadRequest, "bad_sdp", "malformed SDP offer: %v", err)
	}
	if len(sd.MediaDescriptions) == 0 {
		return nil, refusal(http.StatusBadRequest, "bad_sdp", "SDP offer has no media sections")
	}
	o := &offer{}
	for _, a := range sd.Attributes {
		if a.Key == "candidate" {
			o.candidates++
		}
	}
	for _, md := range sd.MediaDescriptions {
		for _, a := range md.Attributes {
			if a.Key == "candidate" {
				o.candidates++
			}
		}
	}
	if o.candidates > maxRemoteCandidates {
		return nil, refusal(http.StatusBadRequest, "bad_sdp", "the offer has %d ICE candidates: at most %d are taken",
			o.candidates, maxRemoteCandidates)
	}
	var video, audio int
	for i, md := range sd.MediaDescriptions {
		kind := webrtc.NewRTPCodecType(md.MediaName.Media)
		if kind == 0 {
			return nil, refusal(http.StatusNotAcceptable, "too_many_tracks",
				"media section %d is %q: a WHIP publisher sends one audio and one video track only", i, md.MediaName.Media)
		}
		if md.MediaName.Port.Value == 0 || !sends(md) {
			continue // rejected or receive-only: nothing to record
		}
		if kind == webrtc.RTPCodecTypeVideo {
			video++
		} else {
			audio++
		}
		if video > 1 || audio > 1 {
			return nil, refusal(http.StatusNotAcceptable, "too_many_tracks",
				"the offer sends %d video and %d audio tracks: a session carries at most one of each; "+
					"publish a webcam and a screen as two devices, each in its own session", video, audio)
		}
		mid, _ := md.Attribute("mid")
		tr, err := chooseCodec(md, kind)
		if err != nil {
			return nil, err
		}
		tr.mid = mid
		keepOnly(md, tr.pt)
		o.tracks = append(o.tracks, tr)
	}
	if len(o.tracks) == 0 {
		return nil, refusal(http.StatusBadRequest, "bad_sdp", "the offer sends no audio or video")
	}
	out, err := sd.Marshal()
	if err != nil {
		return nil, refusal(http.StatusBadRequest, "bad_sdp", "malformed SDP offer: %v", err)
	}
	o.sdp = string(out)
	return o, nil
}

// sends reports whether a media section's direction sends media to us
// (RFC 3264 Section 5.1: sendrecv when none is given).
func sends(md *sdp.MediaDescription) bool {
	for _, a := range md.Attributes {
		switch a.Key {
		case "recvonly", "inactive":
			return false
		case "sendonly", "sendrecv":
			return true
		}
	}
	return true
}

type offeredFormat struct {
	pt       uint8
	name     string
	rate     uint32
	channels int
	fmtp     map[string]string
}

// formats returns the payload formats of a media section with their rtpmap
// and fmtp lines.
func formats(md *sdp.MediaDescription) []offeredFormat {
	byPT := map[uint8]*offeredFormat{}
	var order []uint8
	for _, f := range md.MediaName.Formats {
		pt, err := strconv.ParseUint(f, 10, 7)
		if err != nil {
			continue
		}
		if _, dup := byPT[uint8(pt)]; dup {
			continue
		}
		byPT[uint8(pt)] = &offeredFormat{pt: uint8(pt), fmtp: map[string]string{}}
		order = append(order, uint8(pt))
	}
	for _, a := range md.Attributes {
		ptStr, rest, ok := strings.Cut(a.Value, " ")
		if !ok || (a.Key != "rtpmap" && a.Key != "fmtp") {
			continue
		}
		pt, err := strconv.ParseUint(ptStr, 10, 7)
		if err != nil {
			continue
		}
		f := byPT[uint8(pt)]
		if f == nil {
			continue
		}
		if a.Key == "rtpmap" {
			parts := strings.Split(strings.TrimSpace(rest), "/")
			f.name = parts[0]
			if len(parts) > 1 {
				r, _ := strconv.ParseUint(parts[1], 10, 32)
				f.rate = uint32(r)
			}
			if len(parts) > 2 {
				f.channels, _ = strconv.Atoi(parts[2])
			}
			continue
		}
		for _, kv := range strings.Split(rest, ";") {
			k, v, _ := strings.Cut(strings.TrimSpace(kv), "=")
			f.fmtp[strings.ToLower(k)] = v
		}
	}
	out := make([]offeredFormat, 0, len(order))
	for _, pt := range order {
		out = append(out, *byPT[pt])
	}
	return out
}

// chooseCodec picks the best codec ingest takes among those a media section
// offers.
func chooseCodec(md *sdp.MediaDescription, kind webrtc.RTPCodecType) (offerTrack, *httpError) {
	prefs := videoCodecs
	if kind == webrtc.RTPCodecTypeAudio {
		prefs = audioCodecs
	}
	offered := formats(md)
	best, bestRank := -1, len(prefs)
	for i, f := range offered {
		for rank, c := range prefs {
			if rank < bestRank && strings.EqualFold(kind.String()+"/"+f.name, c.mime) && f.rate == c.clockRate && c.matches(f.fmtp) {
				best, bestRank = i, rank
			}
		}
	}
	if best < 0 {
		var names []string
		for _, f := range offered {
			if f.name != "" && !slices.Contains(names, f.name) && !isAuxiliary(f.name) {
				names = append(names, f.name)
			}
		}
		return offerTrack{}, refusal(http.StatusUnsupportedMediaType, "unsupported_codec",
			"no %s codec in the offer can be recorded (offered: %s); %s", kind, strings.Join(names, ", "), supportedCodecsText)
	}
	f := offered[best]
	tr := offerTrack{kind: kind, codec: prefs[bestRank], pt: f.pt}
	if kind == webrtc.RTPCodecTypeAudio {
		tr.channels = 1
		if f.fmtp["stereo"] == "1" || f.fmtp["sprop-stereo"] == "1" {
			tr.channels = 2
		}
	}
	return tr, nil
}

// isAuxiliary reports payload formats that are not codecs of their own.
func isAuxiliary(name string) bool {
	switch strings.ToLower(name) {
	case "rtx", "red", "ulpfec", "flexfec-03", "telephone-event", "cn":
		return true
	}
	return false
}

// keepOnly removes every payload format of a media section but pt, and the
// simulcast attributes (RFC 8853): a simulcast offer is answered without
// simulcast, so the publisher sends one encoding.
func keepOnly(md *sdp.MediaDescription, pt uint8) {
	ptStr := strconv.Itoa(int(pt))
	md.MediaName.Formats = []string{ptStr}
	attrs := md.Attributes[:0]
	for _, a := range md.Attributes {
		switch a.Key {
		case "rtpmap", "fmtp", "rtcp-fb":
			if p, _, _ := strings.Cut(a.Value, " "); p != ptStr && p != "*" {
				continue
			}
		case "rid", "simulcast":
			continue
		case "ssrc-group":
			if strings.HasPrefix(a.Value, "SIM ") {
				continue
			}
		}
		attrs = append(attrs, a)
	}
	md.Attributes = attrs
}
