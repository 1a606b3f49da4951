#!/usr/bin/env python3
"""blob_motion.py VIDEO COLOUR [DIRECTION] -- where a red or blue object of the synthetic world
(physics/world.cc's palette) moves over the first half second of a generated video.

Prints the frames its blob is in and its centroid's x over frames 0-11, then the least-squares
slope of that x over frames 0-11 and its shift from frames 0-3 to frames 8-11, in pixels. With
DIRECTION (+1 right, -1 left) it is issue #17's motion check (scripts/check_world_set.sh): exit
status 0 only for 96 frames at 64 x 64, the blob in at least half the frames and in 8 of the
first 12, moving that way (slope of that sign, shift at least 3 px). Without it, the last line
is "shift X" (nan when the blob is missing), for scripts/direction_rate.sh.
"""
import subprocess
import sys


def centroids(path, colour):
    probe = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                            "stream=width,height", "-of", "csv=p=0", path],
                           capture_output=True, text=True, check=True).stdout.split(",")
    w, h = int(probe[0]), int(probe[1])
    raw = subprocess.run(["ffmpeg", "-loglevel", "error", "-i", path, "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                         capture_output=True, check=True).stdout
    fb = w * h * 3
    n = len(raw) // fb

    def hit(r, g, b):  # the world's red (220, 40, 40) and blue (40, 80, 220), allowing for blur
        if colour == "red":
            return r > g + 40 and r > b + 40
        return b > r + 40 and b > g + 40

    xs = []
    for f in range(n):
        fr = raw[f * fb:(f + 1) * fb]
        cnt = sx = 0
        for i in range(w * h):
            if hit(fr[3 * i], fr[3 * i + 1], fr[3 * i + 2]):
                cnt += 1
                sx += i % w
        if cnt >= 4:
            xs.append((f, sx / cnt))
    return n, w, h, xs


def first_half_second(xs):
    """(slope px/frame, shift px) over frames 0-11, or None when the blob is too seldom there."""
    first = [(f, x) for f, x in xs if f < 12]
    early = [x for f, x in first if f < 4]
    late = [x for f, x in first if f >= 8]
    if len(first) < 2 or not early or not late:
        return None
    fm = sum(f for f, _ in first) / len(first)
    xm = sum(x for _, x in first) / len(first)
    slope = sum((f - fm) * (x - xm) for f, x in first) / sum((f - fm) ** 2 for f, _ in first)
    return slope, sum(late) / len(late) - sum(early) / len(early)


def main():
    if len(sys.argv) not in (3, 4) or sys.argv[2] not in ("red", "blue"):
        sys.exit("usage: blob_motion.py VIDEO red|blue [+1|-1]")
    path, colour = sys.argv[1], sys.argv[2]
    n, w, h, xs = centroids(path, colour)
    print(f"{path}: {n} frames {w}x{h}; {colour} blob in {len(xs)} frames; centroid x every 2nd frame of the "
          "first half second:", " ".join(f"{x:.0f}" for f, x in xs if f < 12 and f % 2 == 0))
    motion = first_half_second(xs)
    if len(sys.argv) == 3:
        print(f"shift {motion[1]:.2f}" if motion else "shift nan")
        return
    direction = int(sys.argv[3])
    if n != 96 or (w, h) != (64, 64):
        sys.exit("FAIL: want 96 frames at 64x64")
    if len(xs) < n // 2:
        sys.exit(f"FAIL: the {colour} blob is in {len(xs)} of {n} frames (want >= {n // 2})")
    first = sum(1 for f, _ in xs if f < 12)
    if first < 8:
        sys.exit(f"FAIL: the {colour} blob is in {first} of the first 12 frames (want >= 8)")
    if motion is None:
        sys.exit("FAIL: no blob in frames 0-3 or 8-11")
    slope, shift = motion
    print(f"frames 0-11: slope {slope:.2f} px/frame, shift {shift:.1f} px from frames 0-3 to 8-11 "
          f"(want the sign {direction:+d}, at least 3 px)")
    if slope * direction <= 0 or shift * direction < 3:
        sys.exit("FAIL: the blob does not move that way")


if __name__ == "__main__":
    main()
