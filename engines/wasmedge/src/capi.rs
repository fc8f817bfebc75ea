//! Owned handles over the WasmEdge C API (through `wasmedge_sys::ffi`, the bindings that
//! wasmedge-sdk itself is built on).
//!
//! Why not wasmedge-sdk's safe types for this part: a container runtime needs three things the
//! SDK 0.17.1 does not offer. It cannot hand WASI other descriptors than the process's 0/1/2
//! (`WasmEdge_ModuleInstanceCreateWASIWithFds` is not wrapped), it cannot stop a running
//! function except through a timer signal that `siglongjmp`s out of C++ frames (leaking locks
//! and memory), and it gives no access to raw handles. The C API has `ExecutorAsyncInvoke` +
//! `AsyncCancel`, which sets the executor's stop token; the interpreter checks it at every
//! branch, call and return, so even `loop {}` ends.
//!
//! Every handle deletes its context on drop. Nothing here is public outside the crate.

use std::ffi::{c_char, CStr, CString};
use std::ptr::NonNull;

use wasmedge_sys::ffi;

/// A non-success `WasmEdge_Result`: the code and WasmEdge's own message for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    pub(crate) code: u32,
    pub(crate) message: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// `ErrCode::Value::Terminated`: the WASI `proc_exit` path. `WasmEdge_ResultOK` counts it as
/// success, so it must be told apart by code.
pub(crate) const CODE_TERMINATED: u32 = 0x01;
/// `ErrCode::Value::Interrupted`: the executor's stop token was seen.
pub(crate) const CODE_INTERRUPTED: u32 = 0x07;

/// The outcome of a call that ended "OK" in WasmEdge's sense.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Completed {
    Returned,
    /// The guest called `proc_exit`.
    Terminated,
}

fn check(result: ffi::WasmEdge_Result) -> Result<Completed, Failure> {
    // SAFETY: these only read the result's code; the message is a static C string owned by
    // the library (never freed).
    unsafe {
        let code = ffi::WasmEdge_ResultGetCode(result);
        if ffi::WasmEdge_ResultOK(result) {
            return Ok(if code == CODE_TERMINATED {
                Completed::Terminated
            } else {
                Completed::Returned
            });
        }
        let message = ffi::WasmEdge_ResultGetMessage(result);
        let message = if message.is_null() {
            format!("WasmEdge error {code:#x}")
        } else {
            CStr::from_ptr(message).to_string_lossy().into_owned()
        };
        Err(Failure { code, message })
    }
}

fn non_null<T>(ptr: *mut T, what: &str) -> Result<NonNull<T>, Failure> {
    NonNull::new(ptr).ok_or_else(|| Failure {
        code: u32::MAX,
        message: format!("WasmEdge could not create {what}"),
    })
}

/// The WasmEdge library version, e.g. `0.17.1`.
pub(crate) fn version() -> String {
    // SAFETY: returns a static NUL-terminated string.
    unsafe {
        let v = ffi::WasmEdge_VersionGet();
        if v.is_null() {
            return "unknown".into();
        }
        CStr::from_ptr(v).to_string_lossy().into_owned()
    }
}

/// A `WasmEdge_ConfigureContext`: proposals and runtime limits.
pub(crate) struct Config(NonNull<ffi::WasmEdge_ConfigureContext>);

// SAFETY: a configure context is plain data; after setup it is only read.
unsafe impl Send for Config {}
unsafe impl Sync for Config {}

impl Config {
    pub(crate) fn new() -> Result<Self, Failure> {
        non_null(
            // SAFETY: plain constructor.
            unsafe { ffi::WasmEdge_ConfigureCreate() },
            "a configuration",
        )
        .map(Config)
    }

    /// Caps every linear memory of instances run with this configuration at `pages` pages.
    pub(crate) fn set_max_memory_pages(&mut self, pages: u64) {
        // SAFETY: valid context, owned by self.
        unsafe { ffi::WasmEdge_ConfigureSetMaxMemoryPage(self.0.as_ptr(), pages) }
    }
}

impl Drop for Config {
    fn drop(&mut self) {
        // SAFETY: created by ConfigureCreate, deleted once.
        unsafe { ffi::WasmEdge_ConfigureDelete(self.0.as_ptr()) }
    }
}

/// A parsed and validated module (`WasmEdge_ASTModuleContext`).
pub(crate) struct AstModule(NonNull<ffi::WasmEdge_ASTModuleContext>);

// SAFETY: after validation the AST is never written; instantiation only reads it, so runs on
// several threads may share it. It must outlive every instance made from it (the interpreter
// executes the AST's instruction lists), which `Arc<AstModule>` in each run guarantees.
unsafe impl Send for AstModule {}
unsafe impl Sync for AstModule {}

impl AstModule {
    /// Parses and validates a binary module.
    pub(crate) fn parse(config: &Config, wasm: &[u8]) -> Result<Self, Failure> {
        let length = u32::try_from(wasm.len()).map_err(|_| Failure {
            code: u32::MAX,
            message: format!(
                "module of {} bytes exceeds WasmEdge's 4 GiB limit",
                wasm.len()
            ),
        })?;
        // SAFETY: the loader and validator live only in this function; the byte slice outlives
        // the parse call (WasmEdge copies what it keeps).
        unsafe {
            let loader = non_null(ffi::WasmEdge_LoaderCreate(config.0.as_ptr()), "a loader")?;
            let mut ast: *mut ffi::WasmEdge_ASTModuleContext = std::ptr::null_mut();
            let parsed = check(ffi::WasmEdge_LoaderParseFromBytes(
                loader.as_ptr(),
                &mut ast,
                ffi::WasmEdge_Bytes {
                    Length: length,
                    Buf: wasm.as_ptr(),
                },
            ));
            ffi::WasmEdge_LoaderDelete(loader.as_ptr());
            parsed?;
            let ast = AstModule(non_null(ast, "a module")?);
            let validator = non_null(
                ffi::WasmEdge_ValidatorCreate(config.0.as_ptr()),
                "a validator",
            )?;
            let valid = check(ffi::WasmEdge_ValidatorValidate(
                validator.as_ptr(),
                ast.0.as_ptr(),
            ));
            ffi::WasmEdge_ValidatorDelete(validator.as_ptr());
            valid?;
            Ok(ast)
        }
    }

    /// Whether the module exports a function called `name`.
    pub(crate) fn exports_function(&self, name: &str) -> bool {
        // SAFETY: the export list borrows from the AST, which lives as long as self; names are
        // read as byte slices of the given length (not NUL-terminated).
        unsafe {
            let count = ffi::WasmEdge_ASTModuleListExportsLength(self.0.as_ptr());
            let mut exports: Vec<*const ffi::WasmEdge_ExportTypeContext> =
                vec![std::ptr::null(); count as usize];
            let filled =
                ffi::WasmEdge_ASTModuleListExports(self.0.as_ptr(), exports.as_mut_ptr(), count);
            exports.truncate(filled as usize);
            exports.into_iter().any(|export| {
                !export.is_null()
                    && ffi::WasmEdge_ExportTypeGetExternalType(export)
                        == ffi::WasmEdge_ExternalType_Function
                    && string_bytes(ffi::WasmEdge_ExportTypeGetExternalName(export))
                        == name.as_bytes()
            })
        }
    }
}

impl Drop for AstModule {
    fn drop(&mut self) {
        // SAFETY: created by the loader, deleted once.
        unsafe { ffi::WasmEdge_ASTModuleDelete(self.0.as_ptr()) }
    }
}

/// # Safety
/// `s` must point to `Length` readable bytes that outlive the returned slice.
unsafe fn string_bytes<'a>(s: ffi::WasmEdge_String) -> &'a [u8] {
    if s.Buf.is_null() || s.Length == 0 {
        return &[];
    }
    std::slice::from_raw_parts(s.Buf.cast::<u8>(), s.Length as usize)
}

/// A module instance: the WASI host module or an instantiated guest.
pub(crate) struct Instance(NonNull<ffi::WasmEdge_ModuleInstanceContext>);

impl Instance {
    /// Creates the WASI preview 1 host module. `args[0]` is the program name; `envs` are
    /// `KEY=VALUE`; `preopens` are `guest:host[:readonly]`; the three descriptors become the
    /// guest's 0, 1 and 2 (WasmEdge does not close them).
    pub(crate) fn wasi(
        args: &[CString],
        envs: &[CString],
        preopens: &[CString],
        stdio: [i32; 3],
    ) -> Result<Self, Failure> {
        let args: Vec<*const c_char> = args.iter().map(|a| a.as_ptr()).collect();
        let envs: Vec<*const c_char> = envs.iter().map(|e| e.as_ptr()).collect();
        let dirs: Vec<*const c_char> = preopens.iter().map(|p| p.as_ptr()).collect();
        let len = |v: &Vec<*const c_char>| u32::try_from(v.len()).unwrap_or(u32::MAX);
        // SAFETY: the pointer arrays and the strings they point to outlive the call; WasmEdge
        // copies them into its own strings.
        let ptr = unsafe {
            ffi::WasmEdge_ModuleInstanceCreateWASIWithFds(
                args.as_ptr(),
                len(&args),
                envs.as_ptr(),
                len(&envs),
                dirs.as_ptr(),
                len(&dirs),
                stdio[0],
                stdio[1],
                stdio[2],
            )
        };
        non_null(ptr, "the WASI module").map(Instance)
    }

    /// The code the guest passed to `proc_exit` (0 if it never called it).
    pub(crate) fn wasi_exit_code(&self) -> u32 {
        // SAFETY: valid WASI module instance.
        unsafe { ffi::WasmEdge_ModuleInstanceWASIGetExitCode(self.0.as_ptr()) }
    }

    /// The exported function `name`, if there is one.
    pub(crate) fn function(&self, name: &str) -> Option<Function<'_>> {
        let length = u32::try_from(name.len()).ok()?;
        // SAFETY: `StringWrap` borrows `name` for the duration of the lookup only.
        let ptr = unsafe {
            ffi::WasmEdge_ModuleInstanceFindFunction(
                self.0.as_ptr(),
                ffi::WasmEdge_StringWrap(name.as_ptr().cast::<c_char>(), length),
            )
        };
        NonNull::new(ptr).map(|ptr| Function {
            ptr,
            _instance: std::marker::PhantomData,
        })
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        // SAFETY: created by WASI creation or instantiation, deleted once. WasmEdge unlinks it
        // from every store it was registered in.
        unsafe { ffi::WasmEdge_ModuleInstanceDelete(self.0.as_ptr()) }
    }
}

/// A function of an instance; borrows the instance so it cannot outlive it.
pub(crate) struct Function<'a> {
    ptr: NonNull<ffi::WasmEdge_FunctionInstanceContext>,
    _instance: std::marker::PhantomData<&'a Instance>,
}

impl Function<'_> {
    /// Number of parameters and whether the first result is an `i32`.
    pub(crate) fn signature(&self) -> (u32, bool) {
        // SAFETY: the type context belongs to the function instance and lives as long.
        unsafe {
            let ty = ffi::WasmEdge_FunctionInstanceGetFunctionType(self.ptr.as_ptr());
            if ty.is_null() {
                return (0, false);
            }
            let params = ffi::WasmEdge_FunctionTypeGetParametersLength(ty);
            let returns = ffi::WasmEdge_FunctionTypeGetReturnsLength(ty);
            let mut first_i32 = false;
            if returns > 0 {
                let mut types: Vec<ffi::WasmEdge_ValType> =
                    vec![std::mem::zeroed(); returns as usize];
                let n = ffi::WasmEdge_FunctionTypeGetReturns(ty, types.as_mut_ptr(), returns);
                first_i32 = n > 0 && ffi::WasmEdge_ValTypeIsI32(types[0]);
            }
            (params, first_i32)
        }
    }
}

/// A store: where instances are registered so that imports resolve.
pub(crate) struct Store(NonNull<ffi::WasmEdge_StoreContext>);

impl Store {
    pub(crate) fn new() -> Result<Self, Failure> {
        // SAFETY: plain constructor.
        non_null(unsafe { ffi::WasmEdge_StoreCreate() }, "a store").map(Store)
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        // SAFETY: created by StoreCreate, deleted once.
        unsafe { ffi::WasmEdge_StoreDelete(self.0.as_ptr()) }
    }
}

/// An executor: instantiates modules and runs their functions.
pub(crate) struct Executor(NonNull<ffi::WasmEdge_ExecutorContext>);

impl Executor {
    pub(crate) fn new(config: &Config) -> Result<Self, Failure> {
        non_null(
            // SAFETY: the executor copies what it needs from the configuration.
            unsafe { ffi::WasmEdge_ExecutorCreate(config.0.as_ptr(), std::ptr::null_mut()) },
            "an executor",
        )
        .map(Executor)
    }

    /// Registers a host module (WASI) so that the guest's imports find it by its name.
    pub(crate) fn register_import(
        &mut self,
        store: &mut Store,
        module: &Instance,
    ) -> Result<(), Failure> {
        // SAFETY: all three contexts are valid; the store keeps a link to `module`, which the
        // caller drops only after the store's users are gone.
        check(unsafe {
            ffi::WasmEdge_ExecutorRegisterImport(
                self.0.as_ptr(),
                store.0.as_ptr(),
                module.0.as_ptr(),
            )
        })
        .map(|_| ())
    }

    /// Instantiates `ast` against the modules registered in `store`.
    pub(crate) fn instantiate(
        &mut self,
        store: &mut Store,
        ast: &AstModule,
    ) -> Result<Instance, Failure> {
        let mut out: *mut ffi::WasmEdge_ModuleInstanceContext = std::ptr::null_mut();
        // SAFETY: valid contexts; the AST outlives the instance (see `AstModule`).
        check(unsafe {
            ffi::WasmEdge_ExecutorInstantiate(
                self.0.as_ptr(),
                &mut out,
                store.0.as_ptr(),
                ast.0.as_ptr(),
            )
        })?;
        non_null(out, "the module instance").map(Instance)
    }

    /// Starts `func` (no parameters) on WasmEdge's own thread. The returned run borrows the
    /// executor and the function, so neither can be dropped while the guest runs.
    pub(crate) fn start<'a>(&'a mut self, func: &'a Function<'a>) -> Result<AsyncRun<'a>, Failure> {
        // SAFETY: no parameters are passed; executor and function outlive the run (borrows).
        let ptr = unsafe {
            ffi::WasmEdge_ExecutorAsyncInvoke(
                self.0.as_ptr(),
                func.ptr.as_ptr(),
                std::ptr::null(),
                0,
            )
        };
        non_null(ptr, "an asynchronous run").map(|ptr| AsyncRun {
            ptr,
            _borrow: std::marker::PhantomData,
        })
    }
}

impl Drop for Executor {
    fn drop(&mut self) {
        // SAFETY: created by ExecutorCreate, deleted once, after every run that used it.
        unsafe { ffi::WasmEdge_ExecutorDelete(self.0.as_ptr()) }
    }
}

/// A guest call running on WasmEdge's thread.
pub(crate) struct AsyncRun<'a> {
    ptr: NonNull<ffi::WasmEdge_Async>,
    _borrow: std::marker::PhantomData<&'a mut Executor>,
}

/// A way to cancel an [`AsyncRun`] from any thread. Valid only while the run exists; the owner
/// must make sure no one calls [`Canceller::cancel`] after the run is dropped (the engine
/// clears the stop waker first).
#[derive(Clone, Copy)]
pub(crate) struct Canceller(NonNull<ffi::WasmEdge_Async>);

// SAFETY: `WasmEdge_AsyncCancel` only stores to the executor's atomic stop token and notifies
// waiters; it is meant to be called from another thread than the one running the guest.
unsafe impl Send for Canceller {}
unsafe impl Sync for Canceller {}

impl Canceller {
    /// # Safety
    /// The run this was taken from must not have been dropped.
    pub(crate) unsafe fn cancel(&self) {
        ffi::WasmEdge_AsyncCancel(self.0.as_ptr());
    }
}

impl AsyncRun<'_> {
    pub(crate) fn canceller(&self) -> Canceller {
        Canceller(self.ptr)
    }

    /// Waits for the guest to finish; returns how it ended and its first result if it is an
    /// `i32` (what an entrypoint reports as its exit code).
    pub(crate) fn wait(&self, first_is_i32: bool) -> Result<(Completed, Option<i32>), Failure> {
        // SAFETY: valid async context; `returns` has room for the reported length.
        unsafe {
            ffi::WasmEdge_AsyncWait(self.ptr.as_ptr());
            let len = ffi::WasmEdge_AsyncGetReturnsLength(self.ptr.as_ptr());
            let mut returns: Vec<ffi::WasmEdge_Value> = vec![std::mem::zeroed(); len as usize];
            let completed = check(ffi::WasmEdge_AsyncGet(
                self.ptr.as_ptr(),
                returns.as_mut_ptr(),
                len,
            ))?;
            let first = match returns.first() {
                Some(v) if first_is_i32 && completed == Completed::Returned => {
                    Some(ffi::WasmEdge_ValueGetI32(*v))
                }
                _ => None,
            };
            Ok((completed, first))
        }
    }
}

impl Drop for AsyncRun<'_> {
    fn drop(&mut self) {
        // SAFETY: waiting again is cheap once finished, and guarantees WasmEdge's thread no
        // longer touches the executor or the function when the borrows end.
        unsafe {
            ffi::WasmEdge_AsyncWait(self.ptr.as_ptr());
            ffi::WasmEdge_AsyncDelete(self.ptr.as_ptr());
        }
    }
}
