//! Lifting what a plugin returns under a byte budget, checked *before* each list or
//! string is copied out of the guest's memory.
//!
//! What a plugin returns is copied into host memory, outside its memory cap, and a
//! hostile plugin can point many records at the same bytes of its own memory: a few
//! MiB of guest memory could make the host copy gigabytes. These wrappers read each
//! list's length from the canonical ABI (ptr, len) pair first and charge the call's
//! budget (`len × element size`), failing the lift with [`OutputCapExceeded`] before
//! anything is copied; then they hand over to wasmtime's own lifting.
//!
//! Uses wasmtime's `__internal` lifting API (as its derive macros do): tied to the
//! pinned wasmtime version; an upgrade must re-check these signatures (the tests in
//! `tests/cli.rs` and `tests/plugins.rs` fail if the bound stops holding).

use std::cell::Cell;
use wasmtime::component::__internal::{CanonicalAbiInfo, InstanceType, InterfaceType, LiftContext};
use wasmtime::component::{ComponentType, Lift};
use wasmtime::ValRaw;

thread_local! {
    /// Bytes the call under way may still lift. Plugin calls run synchronously on
    /// the thread that set it.
    static LEFT: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// The lift stopped: the call's output went past its budget.
#[derive(Debug, thiserror::Error)]
#[error("plugin output exceeded its budget")]
pub struct OutputCapExceeded;

/// Run `f` (a plugin call) with `budget` bytes to lift; how many were left after.
/// The budget is lifted again afterwards, even if `f` panics.
pub fn with_budget<R>(budget: usize, f: impl FnOnce() -> R) -> (R, usize) {
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            LEFT.with(|left| left.set(usize::MAX));
        }
    }
    LEFT.with(|left| left.set(budget));
    let _reset = Reset;
    let r = f();
    (r, LEFT.with(Cell::get))
}

fn charge(items: u32, each: usize) -> wasmtime::Result<()> {
    let cost = (items as usize).saturating_mul(each.max(1));
    LEFT.with(|left| {
        if cost > left.get() {
            Err(OutputCapExceeded.into())
        } else {
            left.set(left.get() - cost);
            Ok(())
        }
    })
}

/// The length half of a lowered (ptr, len) pair, in memory.
fn len_in_memory(bytes: &[u8]) -> u32 {
    u32::from_le_bytes(bytes[4..8].try_into().expect("a pointer pair is 8 bytes"))
}

/// A `list<T>` lifted as a `Vec<T>`, charged `len × size_of::<T>()` first.
#[derive(Debug)]
pub struct CappedList<T>(pub Vec<T>);

unsafe impl<T> ComponentType for CappedList<T>
where
    Vec<T>: ComponentType<Lower = [ValRaw; 2]>,
{
    type Lower = [ValRaw; 2];
    const ABI: CanonicalAbiInfo = CanonicalAbiInfo::POINTER_PAIR;

    fn typecheck(ty: &InterfaceType, types: &InstanceType<'_>) -> wasmtime::Result<()> {
        <Vec<T> as ComponentType>::typecheck(ty, types)
    }
}

unsafe impl<T> Lift for CappedList<T>
where
    Vec<T>: Lift + ComponentType<Lower = [ValRaw; 2]>,
{
    fn linear_lift_from_flat(
        cx: &mut LiftContext<'_>,
        ty: InterfaceType,
        src: &Self::Lower,
    ) -> wasmtime::Result<Self> {
        charge(src[1].get_u32(), std::mem::size_of::<T>())?;
        Ok(CappedList(<Vec<T> as Lift>::linear_lift_from_flat(
            cx, ty, src,
        )?))
    }

    fn linear_lift_from_memory(
        cx: &mut LiftContext<'_>,
        ty: InterfaceType,
        bytes: &[u8],
    ) -> wasmtime::Result<Self> {
        charge(len_in_memory(bytes), std::mem::size_of::<T>())?;
        Ok(CappedList(<Vec<T> as Lift>::linear_lift_from_memory(
            cx, ty, bytes,
        )?))
    }
}

/// A `string` lifted as a `String`, charged its length first.
#[derive(Debug)]
pub struct CappedString(pub String);

unsafe impl ComponentType for CappedString {
    type Lower = [ValRaw; 2];
    const ABI: CanonicalAbiInfo = CanonicalAbiInfo::POINTER_PAIR;

    fn typecheck(ty: &InterfaceType, types: &InstanceType<'_>) -> wasmtime::Result<()> {
        <String as ComponentType>::typecheck(ty, types)
    }
}

unsafe impl Lift for CappedString {
    fn linear_lift_from_flat(
        cx: &mut LiftContext<'_>,
        ty: InterfaceType,
        src: &Self::Lower,
    ) -> wasmtime::Result<Self> {
        // The top bit tags UTF-16 under the latin1+utf16 encoding: a length either way.
        charge(src[1].get_u32() & !(1 << 31), 1)?;
        Ok(CappedString(<String as Lift>::linear_lift_from_flat(
            cx, ty, src,
        )?))
    }

    fn linear_lift_from_memory(
        cx: &mut LiftContext<'_>,
        ty: InterfaceType,
        bytes: &[u8],
    ) -> wasmtime::Result<Self> {
        charge(len_in_memory(bytes) & !(1 << 31), 1)?;
        Ok(CappedString(<String as Lift>::linear_lift_from_memory(
            cx, ty, bytes,
        )?))
    }
}
