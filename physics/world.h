// The synthetic physics world: scenes of one to three coloured balls and boxes under gravity,
// bouncing on the floor, walls and ceiling and colliding with each other, on a plain
// background, rendered as uint8 RGB frames with the exact per-pixel object labels. It is the
// ground truth that video continuation is scored against (physics_iq.h) and, later, the
// training data of the tiny world model (issue #17).
//
// Everything is a pure function of a uint64 seed: the scene is drawn with our own splitmix64
// generator (never std::*_distribution, whose output differs between standard libraries),
// the simulation is plain double arithmetic in a fixed order (+, *, /, sqrt, compiled with
// -ffp-contract=off), so the same seed gives the same bytes on every machine with IEEE doubles.
//
// World units: the frame is the unit square, x to the right, y DOWN (image order); gravity
// pulls towards +y. Balls are discs, boxes are axis-aligned rectangles that do not rotate.
// Collisions: object-object contacts are elastic (restitution 1, impulse along the contact
// normal, masses ~ area); the floor takes energy out (restitution kBallFloorRestitution /
// kBoxFloorRestitution), the walls and ceiling are elastic, a box on the floor slows by
// kinetic friction. So the total energy (kinetic + potential) never grows beyond the
// integrator's O(dt) wobble.
//
// Rendering samples each pixel at its centre (no anti-aliasing), so the per-frame label image
// is exactly which object is visible where; later objects are drawn over earlier ones.
//
// Thread safety: plain values and pure functions; reentrant.
#ifndef MAGI_PHYSICS_WORLD_H_
#define MAGI_PHYSICS_WORLD_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "worker/media/rgb_frame.h"

namespace magi {
namespace physics {

inline constexpr int kFps = 24;
inline constexpr int kDefaultSize = 64;
inline constexpr int kMaxSize = 256;
inline constexpr int kSizeMultiple = 16;
inline constexpr int kDefaultFrames = 96;
inline constexpr int kMaxFrames = 1024;
inline constexpr int kMaxObjects = 3;
inline constexpr double kGravity = 2.5;  // world units / s^2
inline constexpr int kSubstepsPerFrame = 16;
inline constexpr double kBallFloorRestitution = 0.8;
inline constexpr double kBoxFloorRestitution = 0.3;
inline constexpr double kBoxFloorFriction = 0.1;  // kinetic friction coefficient

// splitmix64 (Steele, Lea, Flood 2014): a tiny, well-mixed 64-bit generator whose output is
// the same everywhere. Thread-compatible.
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}
  uint64_t Next();
  // Uniform in [0, 1) with 53 random bits.
  double Uniform();
  // Uniform in [lo, hi).
  double Uniform(double lo, double hi) { return lo + (hi - lo) * Uniform(); }
  // Uniform integer in [0, n) for n >= 1 (modulo; the bias is < n / 2^64).
  int Below(int n) { return static_cast<int>(Next() % static_cast<uint64_t>(n)); }

 private:
  uint64_t state_;
};

enum class Shape { kBall, kBox };

// How an object starts, which is also what its caption says.
enum class Motion {
  kFall,   // released at rest in the air: falls and bounces in place
  kThrow,  // released in the air moving sideways: falls and bounces to one side
  kSlide,  // on the floor moving sideways (a ball rolls, a box slides and stops)
};

struct Colour {
  const char* name;
  uint8_t r, g, b;
};

// The palette the scenes draw colours from; names are what captions say.
const std::vector<Colour>& Palette();

struct ObjectState {
  Shape shape = Shape::kBall;
  int colour = 0;  // index into Palette()
  Motion motion = Motion::kFall;
  double half_w = 0.08;  // a ball's radius is half_w (== half_h)
  double half_h = 0.08;
  double x = 0.5, y = 0.5;    // centre
  double vx = 0.0, vy = 0.0;  // world units / s
  double Mass() const;
};

// One scene: its objects' initial states and its background colour.
struct Scene {
  uint64_t seed = 0;
  std::vector<ObjectState> objects;  // 1..kMaxObjects, distinct colours, not overlapping
  uint8_t background[3] = {235, 235, 230};
};

// Draws a scene from `seed`: 1-3 objects of distinct colours, each a ball or a box that
// falls, is thrown or slides, placed without overlap.
Scene MakeScene(uint64_t seed);

// A scene of the world with exactly one object: the first of MakeScene(seed x 1000003 + k),
// k = 1, 2, ..., that holds one object (about one in three does), so each single-object scene
// is as likely as MakeScene makes it. Deterministic from seed. A caption then names one
// colour, shape, motion and direction, with no other object's words to tell apart.
Scene MakeSingleObjectScene(uint64_t seed);

// The scene mirrored left to right: every object's x -> 1 - x and vx -> -vx. The world's walls
// are symmetric, so it is a scene of the same world (its frames the original's flipped, up to
// rounding), whose caption names the other direction for every object that moves sideways.
Scene MirrorScene(const Scene& scene);

// A caption made from the scene's parameters, one clause per object joined by " and ", e.g.
// "a red ball falls and bounces to the right and a blue box slides left".
std::string Caption(const Scene& scene);

// The caption of the scene as it is at `frame` (>= 0): Caption of its objects' simulated states
// there, so that each direction word names the way the object moves at that frame (after a
// bounce off a wall, the other way). A sideways mover that has come to rest (a box stopped by
// friction) keeps the direction it set off in.
std::string CaptionAtFrame(const Scene& scene, int frame);

// Advances every object by one frame (1 / kFps s in kSubstepsPerFrame substeps).
void StepFrame(std::vector<ObjectState>& objects);

// The objects' states at frames 0..num_frames-1 (frame 0 is the initial state).
std::vector<std::vector<ObjectState>> Simulate(const Scene& scene, int num_frames);

// Kinetic + potential energy (potential measured from the floor, y = 1), mass-weighted.
double TotalEnergy(const std::vector<ObjectState>& objects);

// One rendered frame with its labels: label[y * width + x] is 0 for background or i + 1 for
// object i of the scene (the one visible there).
struct RenderedFrame {
  RgbFrame rgb;
  std::vector<uint8_t> label;
};

// Ok when `size` is a multiple of kSizeMultiple in [kSizeMultiple, kMaxSize] and
// `num_frames` in [1, kMaxFrames]; otherwise InvalidArgument naming `size_flag` /
// `frames_flag` and the allowed range.
absl::Status CheckRenderArgs(int size, int num_frames, const char* size_flag = "size",
                             const char* frames_flag = "frames");

// Renders one frame of the given object states at size x size.
RenderedFrame RenderFrame(const Scene& scene, const std::vector<ObjectState>& objects, int size);

// Simulates and renders frames 0..num_frames-1 of `scene`. Errors as CheckRenderArgs.
absl::StatusOr<std::vector<RenderedFrame>> RenderScene(const Scene& scene, int size,
                                                       int num_frames);

// Only the RGB frames of RenderScene.
absl::StatusOr<std::vector<RgbFrame>> RenderSceneRgb(const Scene& scene, int size, int num_frames);

}  // namespace physics
}  // namespace magi

#endif  // MAGI_PHYSICS_WORLD_H_
