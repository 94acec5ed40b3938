using System.Buffers;
using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using Microsoft.Extensions.Logging;

namespace RayClient.Server.Workers;

/// <summary>The environment a worker process runs in; workers of different environments never share a process.</summary>
/// <param name="Key">Identity of the environment (equal keys may share workers).</param>
/// <param name="WorkingDirectory">Unpacked working_dir, the process's current directory and first on sys.path.</param>
/// <param name="SysPath">Extra import paths (py_modules), in order.</param>
/// <param name="EnvironmentVariables">env_vars of the runtime env.</param>
/// <param name="PythonExecutable">The interpreter (a pip env's venv), or null for the server's.</param>
internal sealed record WorkerEnvironment(
    string Key,
    string? WorkingDirectory,
    IReadOnlyList<string> SysPath,
    IReadOnlyDictionary<string, string> EnvironmentVariables,
    string? PythonExecutable = null)
{
    public static readonly WorkerEnvironment Default = new("default", null, [], new Dictionary<string, string>());
}

/// <summary>What a worker returned for one task.</summary>
internal sealed class WorkerResult : IDisposable
{
    private byte[]? _frame;

    public WorkerResult(bool isError, IReadOnlyList<ReadOnlyMemory<byte>> values, IReadOnlyList<(char Kind, byte[] Id)> contained, byte[] frame)
    {
        IsError = isError;
        Values = values;
        Contained = contained;
        _frame = frame;
    }

    /// <summary>True when <see cref="Values"/> holds one error pickle (a RayTaskError).</summary>
    public bool IsError { get; }

    /// <summary>One pickle per return value (slices of the received frame).</summary>
    public IReadOnlyList<ReadOnlyMemory<byte>> Values { get; }

    /// <summary>Refs pickled inside the values.</summary>
    public IReadOnlyList<(char Kind, byte[] Id)> Contained { get; }

    /// <summary>Hands the frame buffer (which <see cref="Values"/> slice) to a new owner.</summary>
    public byte[]? DetachFrame() => Interlocked.Exchange(ref _frame, null);

    public void Dispose()
    {
        var frame = DetachFrame();
        if (frame is not null)
        {
            ArrayPool<byte>.Shared.Return(frame);
        }
    }
}

/// <summary>A worker process died while it was running a task.</summary>
internal sealed class WorkerCrashedException(string message) : Exception(message);

/// <summary>
/// One <c>python3 ray_worker.py</c> process, driven over stdin/stdout with length-prefixed frames
/// (the layout is documented at the top of ray_worker.py). User output arrives as stdout frames
/// and on the process's stderr.
/// </summary>
internal sealed partial class WorkerProcess : IAsyncDisposable
{
    private const byte KindReady = 0;
    internal const byte KindExec = 1;
    internal const byte KindCreateActor = 2;
    internal const byte KindCallMethod = 3;
    private const byte KindShutdown = 9;
    internal const byte KindSubmitMethod = 20;
    internal const byte KindGet = 21;
    internal const byte KindSubmitTask = 22;
    private const byte KindStdout = 40;

    /// <summary>Ray's log levels for a worker's streams (ray:python/ray/util/client/server/logservicer.py).</summary>
    internal const int StdoutLevel = -1;

    /// <summary>The level of stderr lines.</summary>
    internal const int StderrLevel = -2;
    private const byte KindCallbackResult = 30;

    private readonly Process _process;
    private readonly Stream _input;
    private readonly Stream _output;
    private readonly ConcurrentDictionary<ulong, Action<WorkerResult?, Exception?>> _pending = new();
    private readonly TaskCompletionSource<string> _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _exited = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private readonly Action<WorkerProcess, string, int> _onOutput;
    private readonly Func<WorkerProcess, byte, ulong, IReadOnlyList<byte[]>, Task>? _onCallback;
    private readonly Task _readLoop;
    private readonly Task _stderrLoop;
    private readonly ILogger _logger;
    private ulong _nextSeq;
    private volatile bool _dead;

    /// <summary>Set when the server ends the process itself (shutdown, cancel, job end): its exit is then no crash.</summary>
    private volatile bool _stopRequested;

    private WorkerProcess(Process process, WorkerEnvironment environment, Action<WorkerProcess, string, int> onOutput, Func<WorkerProcess, byte, ulong, IReadOnlyList<byte[]>, Task>? onCallback, ILogger logger)
    {
        _process = process;
        _logger = logger;
        Environment = environment;
        _onOutput = onOutput;
        _onCallback = onCallback;
        _input = process.StandardInput.BaseStream;
        _output = new BufferedStream(process.StandardOutput.BaseStream, 64 * 1024);
        Pid = process.Id;
        _readLoop = Task.Run(ReadLoopAsync);
        _stderrLoop = Task.Run(StderrLoopAsync);
    }

    public int Pid { get; }

    public WorkerEnvironment Environment { get; }

    public bool IsAlive => !_dead;

    /// <summary>Completes when the process has exited (or its pipe closed).</summary>
    public Task Exited => _exited.Task;

    /// <summary>The client whose task runs now (null when idle).</summary>
    public string? CurrentClientId { get; private set; }

    /// <summary>The client of the most recent task, for attributing output that arrives late.</summary>
    public string? LastClientId { get; private set; }

    /// <summary>The pooled task this worker runs now (null for actors and idle workers).</summary>
    public Scheduling.TaskSpec? CurrentTask { get; private set; }

    /// <summary>Name of the task running now, for log prefixes.</summary>
    public string? CurrentTaskName { get; private set; }

    /// <summary>The worker runs work of <paramref name="clientId"/> from now on (the pool calls it under its lock).</summary>
    public void AssignTo(string clientId)
    {
        CurrentClientId = clientId;
        LastClientId = clientId;
    }

    /// <summary>The worker serves one actor of <paramref name="clientId"/> for its whole life.</summary>
    public void Dedicate(string clientId, string actorName)
    {
        AssignTo(clientId);
        CurrentTaskName = actorName;
    }

    /// <summary>The worker went back to the pool: no client's work runs on it.</summary>
    public void Unassign()
    {
        CurrentClientId = null;
        CurrentTaskName = null;
    }

    /// <summary>A pooled task starts on this worker.</summary>
    public void BeginTask(Scheduling.TaskSpec task)
    {
        CurrentTaskName = task.Name;
        CurrentTask = task;
    }

    /// <summary>The pooled task finished (its output may still arrive, attributed to <see cref="LastClientId"/>).</summary>
    public void EndTask() => CurrentTask = null;

    public static async Task<WorkerProcess> StartAsync(
        string python,
        string script,
        WorkerEnvironment environment,
        Action<WorkerProcess, string, int> onOutput,
        ILogger logger,
        string? clientId,
        CancellationToken cancellationToken,
        Func<WorkerProcess, byte, ulong, IReadOnlyList<byte[]>, Task>? onCallback = null)
    {
        var info = new ProcessStartInfo(python)
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = environment.WorkingDirectory ?? System.Environment.CurrentDirectory,
        };
        info.ArgumentList.Add("-u");
        info.ArgumentList.Add(script);
        foreach (var (key, value) in environment.EnvironmentVariables)
        {
            info.Environment[key] = value;
        }

        info.Environment["PYTHONUNBUFFERED"] = "1";
        if (environment.WorkingDirectory is not null)
        {
            info.Environment["RAYCLIENT_WORKING_DIR"] = environment.WorkingDirectory;
        }

        var sysPath = new List<string>();
        if (environment.WorkingDirectory is not null)
        {
            sysPath.Add(environment.WorkingDirectory);
        }

        sysPath.AddRange(environment.SysPath);
        info.Environment["RAYCLIENT_SYS_PATH"] = string.Join(Path.PathSeparator, sysPath);

        var process = Process.Start(info) ?? throw new InvalidOperationException($"Could not start the Python worker '{python}'.");
        LogStarted(logger, process.Id, python, clientId ?? "none");
        var worker = new WorkerProcess(process, environment, onOutput, onCallback, logger);
        try
        {
            await worker._ready.Task.WaitAsync(TimeSpan.FromSeconds(60), cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            await worker.DisposeAsync().ConfigureAwait(false);
            throw;
        }

        return worker;
    }

    /// <summary>
    /// Sends one function call. <paramref name="onDone"/> runs on the worker's read loop when the
    /// result frame arrives (or with the error when the worker dies): no thread hop per task.
    /// </summary>
    public async Task StartAsync(
        string functionKey,
        ReadOnlyMemory<byte> functionPickle,
        string name,
        string clientId,
        ReadOnlyMemory<byte> args,
        int numReturns,
        IReadOnlyList<(byte[] Id, ReadOnlyMemory<byte> Value)> dependencies,
        Action<WorkerResult?, Exception?> onDone,
        CancellationToken cancellationToken,
        byte kind = KindExec)
    {
        if (_dead)
        {
            throw new WorkerCrashedException($"Worker process {Pid} is not running.");
        }

        var seq = Interlocked.Increment(ref _nextSeq);
        _pending[seq] = onDone;
        var blobs = new List<ReadOnlyMemory<byte>>(6 + (2 * dependencies.Count))
        {
            Encoding.UTF8.GetBytes(functionKey),
            functionPickle,
            Encoding.UTF8.GetBytes(name),
            Encoding.UTF8.GetBytes(clientId),
            args,
            Encoding.ASCII.GetBytes(numReturns.ToString(CultureInfo.InvariantCulture)),
        };
        foreach (var (id, value) in dependencies)
        {
            blobs.Add(id);
            blobs.Add(value);
        }

        try
        {
            await WriteFrameAsync(kind, seq, blobs, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or ObjectDisposedException)
        {
            _pending.TryRemove(seq, out _);
            throw new WorkerCrashedException($"Worker process {Pid} exited before it took the task ({ex.Message}).");
        }

        if (_dead && _pending.TryRemove(seq, out _))
        {
            throw new WorkerCrashedException($"Worker process {Pid} exited.");
        }
    }

    /// <summary>Answers a callback of the worker: a status byte, then the payload blobs.</summary>
    public Task RespondAsync(ulong seq, bool ok, params ReadOnlyMemory<byte>[] payload)
    {
        var blobs = new List<ReadOnlyMemory<byte>>(payload.Length + 1) { new[] { ok ? (byte)0 : (byte)1 } };
        blobs.AddRange(payload);
        return WriteFrameAsync(KindCallbackResult, seq, blobs, CancellationToken.None);
    }

    private Task WriteFrameAsync(byte kind, ulong seq, IReadOnlyList<ReadOnlyMemory<byte>> blobs, CancellationToken cancellationToken) =>
        Frames.WriteAsync(_input, _writeLock, kind, seq, blobs, cancellationToken);

    private async Task ReadLoopAsync()
    {
        var header = new byte[14];
        try
        {
            while (true)
            {
                await _output.ReadExactlyAsync(header.AsMemory(0, 4)).ConfigureAwait(false);
                var length = (int)BinaryPrimitives.ReadUInt32LittleEndian(header);
                var frame = ArrayPool<byte>.Shared.Rent(length);
                await _output.ReadExactlyAsync(frame.AsMemory(0, length)).ConfigureAwait(false);
                var kind = frame[0];
                var seq = BinaryPrimitives.ReadUInt64LittleEndian(frame.AsSpan(1));
                var status = frame[9];
                var blobs = new List<ReadOnlyMemory<byte>>();
                var position = 10;
                while (position < length)
                {
                    var size = (int)BinaryPrimitives.ReadUInt32LittleEndian(frame.AsSpan(position));
                    position += 4;
                    blobs.Add(frame.AsMemory(position, size));
                    position += size;
                }

                if (kind is KindSubmitMethod or KindGet or KindSubmitTask)
                {
                    // User code in the worker calls back (ray.get, actor_handle.method.remote()).
                    var copies = blobs.Select(b => b.ToArray()).ToList();
                    ArrayPool<byte>.Shared.Return(frame);
                    if (_onCallback is { } onCallback)
                    {
                        _ = onCallback(this, kind, seq, copies);
                    }

                    continue;
                }

                if (kind == KindStdout)
                {
                    // What user code wrote to fd 1, line by line (stderr comes on the process's stderr).
                    foreach (var line in blobs)
                    {
                        _onOutput(this, Encoding.UTF8.GetString(line.Span), StdoutLevel);
                    }

                    ArrayPool<byte>.Shared.Return(frame);
                    continue;
                }

                if (kind == KindReady)
                {
                    _ready.TrySetResult(Encoding.UTF8.GetString(blobs[0].Span));
                    ArrayPool<byte>.Shared.Return(frame);
                    continue;
                }

                if (!_pending.TryRemove(seq, out var onDone))
                {
                    ArrayPool<byte>.Shared.Return(frame);
                    continue;
                }

                WorkerResult result;
                if (status == 0)
                {
                    var contained = new List<(char, byte[])>();
                    var refs = blobs[^1].Span;
                    for (var i = 0; i + 1 < refs.Length;)
                    {
                        var kindChar = (char)refs[i];
                        var idLength = kindChar == 'O' ? 28 : 16;
                        contained.Add((kindChar, refs.Slice(i + 1, idLength).ToArray()));
                        i += 1 + idLength;
                    }

                    result = new WorkerResult(false, blobs.GetRange(0, blobs.Count - 1), contained, frame);
                }
                else
                {
                    result = new WorkerResult(true, blobs, [], frame);
                }

                onDone(result, null);
            }
        }
        catch (Exception ex) when (ex is EndOfStreamException or IOException or ObjectDisposedException)
        {
            // The process exited (or was killed): fail whatever it was running.
        }
        finally
        {
            _dead = true;
            var message = ExitDescription();
            if (_stopRequested)
            {
                LogExited(_logger, Pid, message);
            }
            else
            {
                LogCrashed(_logger, Pid, message, _pending.Count);
            }

            _exited.TrySetResult();
            _ready.TrySetException(new WorkerCrashedException($"The Python worker exited during start-up: {message}"));
            foreach (var (seq, onDone) in _pending)
            {
                if (_pending.TryRemove(seq, out _))
                {
                    onDone(null, new WorkerCrashedException($"The worker process (pid {Pid}) died while running the task: {message}"));
                }
            }
        }
    }

    private string ExitDescription()
    {
        try
        {
            if (_process.WaitForExit(2000))
            {
                var code = _process.ExitCode;
                return code < 0 || code > 128 ? $"killed by signal {(code > 128 ? code - 128 : -code)}" : $"exit code {code}";
            }
        }
        catch (InvalidOperationException)
        {
        }

        return "the output pipe closed";
    }

    private async Task StderrLoopAsync()
    {
        try
        {
            var reader = _process.StandardError;
            while (await reader.ReadLineAsync().ConfigureAwait(false) is { } line)
            {
                _onOutput(this, line, StderrLevel);
            }
        }
        catch (Exception ex) when (ex is IOException or ObjectDisposedException or InvalidOperationException)
        {
        }
    }

    /// <summary>Interrupts the running task (SIGINT → KeyboardInterrupt → TaskCancelledError), as ray.cancel(force=False).</summary>
    public void Interrupt() => _ = SendSignal(Pid, 2);

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int SendSignal(int pid, int signal);

    /// <summary>Kills the process at once (used for cancellation and to test crashes).</summary>
    public void Kill()
    {
        _stopRequested = true;
        try
        {
            _process.Kill(entireProcessTree: true);
        }
        catch (InvalidOperationException)
        {
        }
    }

    public async ValueTask DisposeAsync()
    {
        _stopRequested = true;
        if (!_dead)
        {
            try
            {
                await WriteFrameAsync(KindShutdown, 0, [], CancellationToken.None).ConfigureAwait(false);
                _input.Close();
            }
            catch (Exception ex) when (ex is IOException or ObjectDisposedException)
            {
            }

            using var wait = new CancellationTokenSource(TimeSpan.FromSeconds(2));
            try
            {
                await _process.WaitForExitAsync(wait.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                Kill();
            }
        }

        try
        {
            await Task.WhenAll(_readLoop, _stderrLoop).WaitAsync(TimeSpan.FromSeconds(5)).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            Kill();
        }

        _process.Dispose();
        _writeLock.Dispose();
    }

    [LoggerMessage(EventId = ServerEventIds.WorkerStarted, EventName = nameof(ServerEventIds.WorkerStarted), Level = LogLevel.Debug,
        Message = "Started Python worker {Pid} ({Python}) for client {ClientId}.")]
    private static partial void LogStarted(ILogger logger, int pid, string python, string clientId);

    [LoggerMessage(EventId = ServerEventIds.WorkerExited, EventName = nameof(ServerEventIds.WorkerExited), Level = LogLevel.Debug,
        Message = "Python worker {Pid} stopped by the server: {Exit}.")]
    private static partial void LogExited(ILogger logger, int pid, string exit);

    [LoggerMessage(EventId = ServerEventIds.WorkerCrashed, EventName = nameof(ServerEventIds.WorkerCrashed), Level = LogLevel.Warning,
        Message = "Python worker {Pid} died unexpectedly: {Exit} ({InFlight} call(s) in flight).")]
    private static partial void LogCrashed(ILogger logger, int pid, string exit, int inFlight);
}
