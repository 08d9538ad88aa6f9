// C++ crash kind of the coroner crasher: an exception nobody catches.
#include <stdexcept>

extern "C" {

// Throws; not noexcept, so the exception leaves this frame.
__attribute__((noinline)) void coroner_cxx_throw(void) {
    throw std::runtime_error("coroner crasher: uncaught C++ exception");
}

// noexcept: no handler exists between the throw and this frame, and the
// exception must not travel into the Rust frames above (a foreign exception
// there is undefined behaviour, not std::terminate). The C++ runtime calls
// std::terminate, which prints "terminate called after throwing an instance
// of 'std::runtime_error'" and aborts: SIGABRT (SI_TKILL) with this function
// on the stack.
__attribute__((noinline)) void crash_cxx_terminate(void) noexcept {
    coroner_cxx_throw();
    __asm__ volatile("" ::: "memory");
}

}  // extern "C"
