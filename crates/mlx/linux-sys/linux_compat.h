/* Force-included (clang/gcc `-include`) in mlx-c's C++ build and in bindgen's parse of its headers, on Linux.
 * Written for tokbench's Linux build of mlx-sys; see build.rs beside it. */
#ifndef TOKBENCH_MLX_LINUX_COMPAT_H
#define TOKBENCH_MLX_LINUX_COMPAT_H

/* mlx-c's half.h declares float16_t / bfloat16_t (and HAS_FLOAT16 / HAS_BFLOAT16, which guard the float16 and
 * bfloat16 accessors in array.h) only on aarch64, but mlx-rs uses both types on every target. Off aarch64 they are
 * storage types: 16 bits whose meaning MLX's dtype gives. bindgen (clang, C) sees __fp16, which it maps to the same
 * `__BindgenFloat16(u16)` newtype it produces on Apple silicon, and uint16_t for bfloat16 (as `__bf16` maps there);
 * the C++ build sees uint16_t for both, so `array::item<float16_t>()` copies the raw bits. */
#if !defined(__aarch64__) && !defined(__ARM_FEATURE_FP16_SCALAR_ARITHMETIC)
#include <stdint.h>
#if defined(__cplusplus)
typedef uint16_t float16_t;
#else
typedef __fp16 float16_t;
#endif
typedef uint16_t bfloat16_t;
#define HAS_FLOAT16
#define HAS_BFLOAT16
/* half.h must not redefine them. */
#define MLX_HALF_H
#endif

/* mlx-c's private/io.h formats its error messages with std::format, which GCC 12's libstdc++ lacks. This fallback
 * replaces each "{}" with the next argument (all that io.h uses); it is declared only where the library has none. */
#if defined(__cplusplus)
#include <version>
#if !defined(__cpp_lib_format)
#include <sstream>
#include <string>
#include <string_view>
namespace std {
inline void tokbench_format_rest(std::ostringstream& out, std::string_view fmt) { out << fmt; }
template <class First, class... Rest>
void tokbench_format_rest(std::ostringstream& out, std::string_view fmt, const First& first, const Rest&... rest) {
  const auto at = fmt.find("{}");
  if (at == std::string_view::npos) {
    out << fmt;
    return;
  }
  out << fmt.substr(0, at) << first;
  tokbench_format_rest(out, fmt.substr(at + 2), rest...);
}
template <class... Args>
std::string format(std::string_view fmt, const Args&... args) {
  std::ostringstream out;
  tokbench_format_rest(out, fmt, args...);
  return out.str();
}
}  // namespace std
#endif
#endif

#endif
