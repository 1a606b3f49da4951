#include "physics/world.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace magi {
namespace physics {
namespace {

constexpr double kPi = 3.14159265358979323846;
constexpr double kSubstep = 1.0 / (kFps * kSubstepsPerFrame);
// A floor bounce slower than this ends in rest (no endless micro-bounces).
constexpr double kRestSpeed = 3.0 * kGravity * kSubstep;

double Clamp(double v, double lo, double hi) { return std::min(std::max(v, lo), hi); }

bool OnFloor(const ObjectState& o) { return o.y + o.half_h >= 1.0 - 1e-9 && o.vy == 0.0; }

// Keeps an object inside the unit square; with `bounce` its velocity reflects off what it hit.
void ConfineToFrame(ObjectState& o, bool bounce) {
  if (o.x - o.half_w < 0.0) {
    o.x = o.half_w;
    if (bounce && o.vx < 0.0) o.vx = -o.vx;
  } else if (o.x + o.half_w > 1.0) {
    o.x = 1.0 - o.half_w;
    if (bounce && o.vx > 0.0) o.vx = -o.vx;
  }
  if (o.y - o.half_h < 0.0) {
    o.y = o.half_h;
    if (bounce && o.vy < 0.0) o.vy = -o.vy;
  } else if (o.y + o.half_h > 1.0) {
    o.y = 1.0 - o.half_h;
    if (bounce && o.vy > 0.0) {
      const double e = o.shape == Shape::kBall ? kBallFloorRestitution : kBoxFloorRestitution;
      o.vy = -o.vy * e;
      if (-o.vy < kRestSpeed) o.vy = 0.0;
    }
  }
}

// Contact between a and b: the unit normal from a to b and the penetration depth (> 0 when
// they overlap).
struct Contact {
  double nx = 1.0, ny = 0.0, depth = 0.0;
};

// Least-overlap axis of two boxes (or a box and a centre inside it).
Contact AxisContact(double dx, double dy, double overlap_x, double overlap_y) {
  Contact c;
  if (overlap_x < overlap_y) {
    c.nx = dx >= 0.0 ? 1.0 : -1.0;
    c.ny = 0.0;
    c.depth = overlap_x;
  } else {
    c.nx = 0.0;
    c.ny = dy >= 0.0 ? 1.0 : -1.0;
    c.depth = overlap_y;
  }
  return c;
}

Contact BallBox(const ObjectState& ball, const ObjectState& box, bool ball_first) {
  const double qx = Clamp(ball.x, box.x - box.half_w, box.x + box.half_w);
  const double qy = Clamp(ball.y, box.y - box.half_h, box.y + box.half_h);
  double dx = ball.x - qx, dy = ball.y - qy;  // from box to ball
  const double dist = std::sqrt(dx * dx + dy * dy);
  Contact c;
  if (dist > 0.0) {
    c.nx = dx / dist;
    c.ny = dy / dist;
    c.depth = ball.half_w - dist;
  } else {  // the centre is inside the box
    const double cx = ball.x - box.x, cy = ball.y - box.y;
    c = AxisContact(cx, cy, box.half_w + ball.half_w - std::abs(cx),
                    box.half_h + ball.half_w - std::abs(cy));
  }
  if (ball_first) {  // the normal must point from the ball to the box
    c.nx = -c.nx;
    c.ny = -c.ny;
  }
  return c;
}

Contact FindContact(const ObjectState& a, const ObjectState& b) {
  const double dx = b.x - a.x, dy = b.y - a.y;
  if (a.shape == Shape::kBall && b.shape == Shape::kBall) {
    const double dist = std::sqrt(dx * dx + dy * dy);
    Contact c;
    if (dist > 0.0) {
      c.nx = dx / dist;
      c.ny = dy / dist;
    }
    c.depth = a.half_w + b.half_w - dist;
    return c;
  }
  if (a.shape == Shape::kBox && b.shape == Shape::kBox) {
    return AxisContact(dx, dy, a.half_w + b.half_w - std::abs(dx),
                       a.half_h + b.half_h - std::abs(dy));
  }
  if (a.shape == Shape::kBall) return BallBox(a, b, /*ball_first=*/true);
  return BallBox(b, a, /*ball_first=*/false);
}

// Separates an overlapping pair in proportion to mass and applies an elastic impulse along
// the normal when they approach each other.
void Collide(ObjectState& a, ObjectState& b) {
  const Contact c = FindContact(a, b);
  if (c.depth <= 0.0) return;
  const double ma = a.Mass(), mb = b.Mass();
  const double wa = mb / (ma + mb), wb = ma / (ma + mb);
  a.x -= c.nx * c.depth * wa;
  a.y -= c.ny * c.depth * wa;
  b.x += c.nx * c.depth * wb;
  b.y += c.ny * c.depth * wb;
  const double approach = (b.vx - a.vx) * c.nx + (b.vy - a.vy) * c.ny;
  if (approach >= 0.0) return;
  const double impulse = -2.0 * approach / (1.0 / ma + 1.0 / mb);  // restitution 1
  a.vx -= impulse / ma * c.nx;
  a.vy -= impulse / ma * c.ny;
  b.vx += impulse / mb * c.nx;
  b.vy += impulse / mb * c.ny;
}

bool Overlaps(const ObjectState& a, const ObjectState& b, double margin) {
  return std::abs(a.x - b.x) < a.half_w + b.half_w + margin &&
         std::abs(a.y - b.y) < a.half_h + b.half_h + margin;
}

const char* Direction(double vx) { return vx > 0.0 ? "right" : "left"; }

}  // namespace

uint64_t SplitMix64::Next() {
  uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

double SplitMix64::Uniform() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }

const std::vector<Colour>& Palette() {
  static const std::vector<Colour>* palette = new std::vector<Colour>{
      {"red", 220, 40, 40},     {"green", 40, 170, 60},   {"blue", 40, 80, 220},
      {"yellow", 230, 200, 30}, {"purple", 150, 60, 190}, {"orange", 245, 130, 20},
  };
  return *palette;
}

double ObjectState::Mass() const {
  return shape == Shape::kBall ? kPi * half_w * half_w : 4.0 * half_w * half_h;
}

Scene MakeScene(uint64_t seed) {
  SplitMix64 rng(seed);
  Scene scene;
  scene.seed = seed;
  const int wanted = 1 + rng.Below(kMaxObjects);
  std::vector<int> colours(Palette().size());
  for (size_t i = 0; i < colours.size(); ++i) colours[i] = static_cast<int>(i);
  for (int i = static_cast<int>(colours.size()) - 1; i > 0; --i) {
    std::swap(colours[i], colours[rng.Below(i + 1)]);
  }
  for (int k = 0; k < wanted; ++k) {
    ObjectState o;
    o.colour = colours[k];
    o.shape = rng.Uniform() < 0.6 ? Shape::kBall : Shape::kBox;
    if (o.shape == Shape::kBall) {
      o.half_w = o.half_h = rng.Uniform(0.06, 0.11);
    } else {
      o.half_w = rng.Uniform(0.06, 0.11);
      o.half_h = rng.Uniform(0.06, 0.11);
    }
    o.motion = static_cast<Motion>(rng.Below(3));
    const double sign = rng.Below(2) == 0 ? -1.0 : 1.0;
    const double speed = rng.Uniform(0.3, 0.7);
    // Up to 64 placements; an object that never fits is left out (the scene stays valid).
    for (int attempt = 0; attempt < 64; ++attempt) {
      o.x = rng.Uniform(o.half_w, 1.0 - o.half_w);
      o.y = o.motion == Motion::kSlide ? 1.0 - o.half_h : rng.Uniform(o.half_h + 0.02, 0.5);
      const bool clear = std::none_of(scene.objects.begin(), scene.objects.end(),
                                      [&](const ObjectState& p) { return Overlaps(o, p, 0.02); });
      if (clear) {
        o.vx = o.motion == Motion::kFall ? 0.0 : sign * speed;
        o.vy = 0.0;
        scene.objects.push_back(o);
        break;
      }
    }
  }
  return scene;
}

Scene MakeSingleObjectScene(uint64_t seed) {
  for (uint64_t k = 1;; ++k) {
    Scene scene = MakeScene(seed * 1000003ULL + k);
    if (scene.objects.size() == 1) return scene;
  }
}

Scene MirrorScene(const Scene& scene) {
  Scene mirrored = scene;
  for (ObjectState& o : mirrored.objects) {
    o.x = 1.0 - o.x;
    o.vx = -o.vx;
  }
  return mirrored;
}

std::string Caption(const Scene& scene) {
  std::vector<std::string> clauses;
  for (const ObjectState& o : scene.objects) {
    const bool ball = o.shape == Shape::kBall;
    const char* colour = Palette()[o.colour].name;
    const bool vowel = colour[0] == 'a' || colour[0] == 'e' || colour[0] == 'i' ||
                       colour[0] == 'o' || colour[0] == 'u';
    std::string what = absl::StrCat(vowel ? "an " : "a ", colour, ball ? " ball" : " box");
    switch (o.motion) {
      case Motion::kFall:
        absl::StrAppend(&what, ball ? " falls and bounces" : " falls");
        break;
      case Motion::kThrow:
        absl::StrAppend(&what, ball ? " falls and bounces to the " : " falls to the ",
                        Direction(o.vx));
        break;
      case Motion::kSlide:
        absl::StrAppend(&what, ball ? " rolls to the " : " slides ", Direction(o.vx));
        break;
    }
    clauses.push_back(std::move(what));
  }
  return absl::StrJoin(clauses, " and ");
}

std::string CaptionAtFrame(const Scene& scene, int frame) {
  Scene now = scene;
  now.objects = Simulate(scene, std::max(frame, 0) + 1).back();
  for (size_t k = 0; k < now.objects.size(); ++k) {
    if (now.objects[k].vx == 0.0) now.objects[k].vx = scene.objects[k].vx;
  }
  return Caption(now);
}

void StepFrame(std::vector<ObjectState>& objects) {
  for (int s = 0; s < kSubstepsPerFrame; ++s) {
    for (ObjectState& o : objects) {
      if (o.shape == Shape::kBox && OnFloor(o) && o.vx != 0.0) {
        const double dv = kBoxFloorFriction * kGravity * kSubstep;
        o.vx = std::abs(o.vx) <= dv ? 0.0 : o.vx - (o.vx > 0.0 ? dv : -dv);
      }
      o.vy += kGravity * kSubstep;
      o.x += o.vx * kSubstep;
      o.y += o.vy * kSubstep;
      ConfineToFrame(o, /*bounce=*/true);
    }
    for (size_t i = 0; i < objects.size(); ++i) {
      for (size_t j = i + 1; j < objects.size(); ++j) Collide(objects[i], objects[j]);
    }
    for (ObjectState& o : objects) ConfineToFrame(o, /*bounce=*/false);
  }
}

std::vector<std::vector<ObjectState>> Simulate(const Scene& scene, int num_frames) {
  std::vector<std::vector<ObjectState>> states;
  states.reserve(std::max(num_frames, 0));
  std::vector<ObjectState> objects = scene.objects;
  for (int f = 0; f < num_frames; ++f) {
    if (f > 0) StepFrame(objects);
    states.push_back(objects);
  }
  return states;
}

double TotalEnergy(const std::vector<ObjectState>& objects) {
  double e = 0.0;
  for (const ObjectState& o : objects) {
    const double height = 1.0 - (o.y + o.half_h);
    e += o.Mass() * (0.5 * (o.vx * o.vx + o.vy * o.vy) + kGravity * height);
  }
  return e;
}

absl::Status CheckRenderArgs(int size, int num_frames, const char* size_flag,
                             const char* frames_flag) {
  if (size < kSizeMultiple || size > kMaxSize || size % kSizeMultiple != 0) {
    return absl::InvalidArgumentError(absl::StrCat("--", size_flag, " is ", size,
                                                   "; allowed: a multiple of ", kSizeMultiple,
                                                   " in [", kSizeMultiple, ", ", kMaxSize, "]"));
  }
  if (num_frames < 1 || num_frames > kMaxFrames) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", frames_flag, " is ", num_frames, "; allowed: [1, ", kMaxFrames, "]"));
  }
  return absl::OkStatus();
}

RenderedFrame RenderFrame(const Scene& scene, const std::vector<ObjectState>& objects, int size) {
  RenderedFrame out;
  out.rgb = RgbFrame(size, size);
  out.label.assign(static_cast<size_t>(size) * size, 0);
  for (size_t p = 0; p < out.label.size(); ++p) {
    std::copy(scene.background, scene.background + 3, out.rgb.rgb24.data() + p * 3);
  }
  const double inv = 1.0 / size;
  for (size_t i = 0; i < objects.size(); ++i) {
    const ObjectState& o = objects[i];
    const Colour& c = Palette()[o.colour];
    // Pixel x covers [x, x+1) / size; its centre is (x + 0.5) / size.
    const int x0 = std::max(0, static_cast<int>(std::floor((o.x - o.half_w) * size)));
    const int x1 = std::min(size - 1, static_cast<int>(std::ceil((o.x + o.half_w) * size)));
    const int y0 = std::max(0, static_cast<int>(std::floor((o.y - o.half_h) * size)));
    const int y1 = std::min(size - 1, static_cast<int>(std::ceil((o.y + o.half_h) * size)));
    for (int py = y0; py <= y1; ++py) {
      const double cy = (py + 0.5) * inv - o.y;
      for (int px = x0; px <= x1; ++px) {
        const double cx = (px + 0.5) * inv - o.x;
        const bool inside = o.shape == Shape::kBall
                                ? cx * cx + cy * cy <= o.half_w * o.half_w
                                : std::abs(cx) <= o.half_w && std::abs(cy) <= o.half_h;
        if (!inside) continue;
        out.label[static_cast<size_t>(py) * size + px] = static_cast<uint8_t>(i + 1);
        uint8_t* pixel = out.rgb.Pixel(px, py);
        pixel[0] = c.r;
        pixel[1] = c.g;
        pixel[2] = c.b;
      }
    }
  }
  return out;
}

absl::StatusOr<std::vector<RenderedFrame>> RenderScene(const Scene& scene, int size,
                                                       int num_frames) {
  absl::Status ok = CheckRenderArgs(size, num_frames);
  if (!ok.ok()) return ok;
  std::vector<RenderedFrame> frames;
  frames.reserve(num_frames);
  for (const auto& states : Simulate(scene, num_frames)) {
    frames.push_back(RenderFrame(scene, states, size));
  }
  return frames;
}

absl::StatusOr<std::vector<RgbFrame>> RenderSceneRgb(const Scene& scene, int size, int num_frames) {
  absl::StatusOr<std::vector<RenderedFrame>> rendered = RenderScene(scene, size, num_frames);
  if (!rendered.ok()) return rendered.status();
  std::vector<RgbFrame> frames;
  frames.reserve(rendered->size());
  for (RenderedFrame& f : *rendered) frames.push_back(std::move(f.rgb));
  return frames;
}

}  // namespace physics
}  // namespace magi
