//! Coalesces the milter's outgoing replies into one write per stage.
//!
//! indymilter flushes every protocol message it writes, so an end of message
//! that changes ten headers, the envelope and the body costs the milter a
//! dozen `send` calls and Postfix a dozen reads and wake-ups. A modification
//! action is never answered and is always followed by the stage's final reply
//! (continue, accept, reject, …), so it can wait for that reply: this stream
//! holds the frames of modification actions and writes them together with the
//! next frame of any other kind. Measured on the buyer → seller benchmark:
//! 14.8 → 4.0 `sendto` per message.
//!
//! The milter's output is a sequence of frames, `u32` length (big-endian,
//! counting the kind byte), one kind byte, then the payload; the stream
//! tracks frame boundaries across writes to see each frame's kind.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Above this many held bytes (a large replacement body), they are written
/// out at the next flush anyway: memory stays bounded.
const MAX_HELD: usize = 64 * 1024;

/// Reply kinds that modify the message (libmilter's `SMFIR_*`): no answer,
/// always followed by the stage's final reply.
fn is_modification(kind: u8) -> bool {
    matches!(
        kind,
        b'+' // add recipient
            | b'2' // add recipient with ESMTP arguments
            | b'-' // delete recipient
            | b'b' // replace body chunk
            | b'e' // change envelope sender
            | b'h' // add header
            | b'i' // insert header
            | b'm' // change header
            | b'q' // quarantine
    )
}

/// Where the writer is in the outgoing frame sequence.
#[derive(Default)]
struct FrameScan {
    /// Bytes of the current frame's length and kind seen so far (0..=5).
    header: [u8; 5],
    header_len: usize,
    /// Payload bytes of the current frame still to come.
    payload_left: u64,
    /// The current frame is not a modification: it releases what is held.
    releasing: bool,
}

impl FrameScan {
    /// Scans `data`; returns the offset in it up to which everything may go
    /// out: the end of the last byte of a non-modification frame in it.
    fn scan(&mut self, data: &[u8]) -> Option<usize> {
        let mut release = None;
        let mut i = 0;
        while i < data.len() {
            if self.payload_left > 0 {
                let n = (data.len() - i).min(usize::try_from(self.payload_left).unwrap_or(usize::MAX));
                self.payload_left -= n as u64;
                i += n;
            } else {
                self.header[self.header_len] = data[i];
                self.header_len += 1;
                i += 1;
                if self.header_len < 5 {
                    continue;
                }
                let len = u32::from_be_bytes([self.header[0], self.header[1], self.header[2], self.header[3]]);
                self.payload_left = u64::from(len.saturating_sub(1));
                self.releasing = !is_modification(self.header[4]);
                self.header_len = 0;
            }
            if self.releasing {
                release = Some(i);
            }
        }
        release
    }
}

/// A stream that holds modification frames until the next other frame.
pub struct Coalesced<S> {
    inner: S,
    /// Bytes accepted but not yet written to `inner`, from `sent` on.
    held: Vec<u8>,
    sent: usize,
    /// `held[..release]` may be written now.
    release: usize,
    scan: FrameScan,
}

impl<S> Coalesced<S> {
    pub fn new(inner: S) -> Self {
        Coalesced { inner, held: Vec::new(), sent: 0, release: 0, scan: FrameScan::default() }
    }
}

impl<S: AsyncWrite + Unpin> Coalesced<S> {
    /// Writes out `held[..upto]`.
    fn poll_drain(&mut self, cx: &mut Context<'_>, upto: usize) -> Poll<io::Result<()>> {
        while self.sent < upto {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.held[self.sent..upto]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
        }
        if self.sent == self.held.len() {
            self.held.clear();
            self.sent = 0;
            self.release = 0;
        }
        Poll::Ready(Ok(()))
    }

    /// How much of what is held goes out at a flush.
    fn releasable(&self) -> usize {
        if self.held.len() > MAX_HELD { self.held.len() } else { self.release }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Coalesced<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.held.len() > MAX_HELD {
            let upto = this.held.len();
            ready!(this.poll_drain(cx, upto))?;
        }
        let start = this.held.len();
        this.held.extend_from_slice(data);
        if let Some(end) = this.scan.scan(data) {
            this.release = start + end;
        }
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let upto = this.releasable();
        ready!(this.poll_drain(cx, upto))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let upto = this.held.len();
        ready!(this.poll_drain(cx, upto))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Coalesced<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        // The MTA answers nothing before the final reply, which releases all;
        // should a read come first anyway, nothing held may be left behind.
        if this.sent < this.held.len() {
            let upto = this.held.len();
            ready!(this.poll_drain(cx, upto))?;
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    /// Records each write that reaches the socket.
    #[derive(Default)]
    struct Writes(Vec<Vec<u8>>);

    impl AsyncWrite for Writes {
        fn poll_write(mut self: Pin<&mut Self>, _: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
            self.0.push(data.to_vec());
            Poll::Ready(Ok(data.len()))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
        let mut f = (payload.len() as u32 + 1).to_be_bytes().to_vec();
        f.push(kind);
        f.extend_from_slice(payload);
        f
    }

    /// Writes each frame and flushes, as indymilter does.
    async fn send(s: &mut Coalesced<Writes>, frames: &[Vec<u8>]) {
        for f in frames {
            s.write_all(f).await.unwrap();
            s.flush().await.unwrap();
        }
    }

    #[tokio::test]
    async fn modifications_go_out_with_the_final_reply() {
        let mut s = Coalesced::new(Writes::default());
        let frames = [
            frame(b'm', b"\0\0\0\x01From\0x\0"),
            frame(b'h', b"MIME-Version\x001.0\0"),
            frame(b'e', b"<a@b>\0"),
            frame(b'-', b"<c@d>\0"),
            frame(b'+', b"<e@f>\0"),
            frame(b'b', b"new body"),
        ];
        send(&mut s, &frames).await;
        assert!(s.inner.0.is_empty(), "modifications are held until the final reply");
        send(&mut s, &[frame(b'c', b"")]).await;
        assert_eq!(s.inner.0.len(), 1, "one write for the whole stage");
        let expected: Vec<u8> = frames.iter().flatten().chain(&frame(b'c', b"")).copied().collect();
        assert_eq!(s.inner.0[0], expected);
    }

    #[tokio::test]
    async fn other_replies_are_written_at_once() {
        let mut s = Coalesced::new(Writes::default());
        send(&mut s, &[frame(b'O', &[0; 12])]).await;
        send(&mut s, &[frame(b'c', b"")]).await;
        send(&mut s, &[frame(b'y', b"550 5.1.1 unknown\0")]).await;
        assert_eq!(s.inner.0, [frame(b'O', &[0; 12]), frame(b'c', b""), frame(b'y', b"550 5.1.1 unknown\0")]);
    }

    #[tokio::test]
    async fn frames_split_across_writes_are_followed() {
        let mut s = Coalesced::new(Writes::default());
        let mut bytes = frame(b'h', b"X-A\0one\0");
        bytes.extend(frame(b'a', b""));
        // Byte by byte: the length and kind arrive in pieces.
        for b in &bytes {
            s.write_all(&[*b]).await.unwrap();
        }
        s.flush().await.unwrap();
        assert_eq!(s.inner.0.concat(), bytes);
    }

    #[tokio::test]
    async fn a_large_replacement_body_is_not_held_whole() {
        let mut s = Coalesced::new(Writes::default());
        let chunk = frame(b'b', &vec![b'x'; 65535]);
        send(&mut s, &[chunk.clone(), chunk.clone(), chunk.clone()]).await;
        let written: usize = s.inner.0.iter().map(Vec::len).sum();
        assert!(written >= 2 * chunk.len(), "held at most one chunk beyond the limit, wrote {written}");
        send(&mut s, &[frame(b'c', b"")]).await;
        assert_eq!(s.inner.0.concat(), [chunk.clone(), chunk.clone(), chunk, frame(b'c', b"")].concat());
    }

    #[tokio::test]
    async fn a_modification_after_a_final_reply_waits_for_the_next_one() {
        let mut s = Coalesced::new(Writes::default());
        s.write_all(&frame(b'c', b"")).await.unwrap();
        s.write_all(&frame(b'h', b"X-A\0one\0")).await.unwrap();
        s.flush().await.unwrap();
        assert_eq!(s.inner.0.concat(), frame(b'c', b""));
        send(&mut s, &[frame(b'a', b"")]).await;
        assert_eq!(s.inner.0.concat(), [frame(b'c', b""), frame(b'h', b"X-A\0one\0"), frame(b'a', b"")].concat());
    }

    #[tokio::test]
    async fn shutdown_writes_what_is_held() {
        let mut s = Coalesced::new(Writes::default());
        send(&mut s, &[frame(b'h', b"X-A\0one\0")]).await;
        s.shutdown().await.unwrap();
        assert_eq!(s.inner.0.concat(), frame(b'h', b"X-A\0one\0"));
    }
}
