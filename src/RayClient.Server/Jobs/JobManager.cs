using System.Diagnostics;
using System.Globalization;
using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using RayClient.Server.Workers;

namespace RayClient.Server.Jobs;

/// <summary>
/// Owns submitted jobs (Ray: <c>job_manager.py</c> and <c>job_supervisor.py</c> in one): keeps their
/// records and driver logs in the data directory, runs each entrypoint as a shell command in its
/// own process group, follows Ray's status machine and messages, and stops jobs as Ray does
/// (the stop signal to the group, then SIGKILL after the grace period). The REST endpoints only
/// translate to and from it.
/// </summary>
internal sealed partial class JobManager : IAsyncDisposable
{
    private const int TailLines = 10;
    private const int TailChars = 20_000;
    private const long MaxLogRead = 16L * 1024 * 1024;
    private const int SigKill = 9;
    private const int SigTerm = 15;
    private const int SigInt = 2;

    /// <summary>
    /// Starts the entrypoint as Ray's supervisor does (<c>Popen(shell=True, start_new_session=True)</c>
    /// with stdout and stderr appended to the driver log): a new session (so the whole tree can be
    /// signalled), the log file on fds 1 and 2, stdin from /dev/null, then <c>/bin/sh -c</c>.
    /// </summary>
    private const string Launcher =
        "import os,sys\n" +
        "os.setsid()\n" +
        "fd=os.open(sys.argv[1],os.O_WRONLY|os.O_APPEND|os.O_CREAT,0o644)\n" +
        "os.dup2(fd,1);os.dup2(fd,2);os.close(fd)\n" +
        "n=os.open(os.devnull,os.O_RDONLY);os.dup2(n,0);os.close(n)\n" +
        "os.execv('/bin/sh',['/bin/sh','-c',sys.argv[2]])\n";

    /// <summary>The same with <c>setsid</c>: the log on fds 1 and 2, stdin from /dev/null, then <c>/bin/sh -c</c>.</summary>
    private const string ShellLauncher = "exec >>\"$1\" 2>&1 </dev/null; exec /bin/sh -c \"$2\"";

    /// <summary>util-linux <c>setsid</c>, when the system has it (Linux); null elsewhere (macOS).</summary>
    private static readonly string? Setsid = new[] { "/usr/bin/setsid", "/bin/setsid" }.FirstOrDefault(File.Exists);

    private static readonly char[] IdAlphabet = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnpqrstuvwxyz123456789".ToCharArray();

    private readonly ServerState _state;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly string _recordsDirectory;
    private readonly string _logsDirectory;
    private readonly string _binDirectory;
    private readonly Lock _lock = new();
    private readonly Dictionary<string, Job> _jobs = new(StringComparer.Ordinal);
    private readonly CancellationTokenSource _shutdown = new();
    private int _disposed;

    public JobManager(ServerState state, string dataDirectory, ILogger logger)
    {
        _state = state;
        _logger = logger;
        _time = state.Options.TimeProvider;
        DataDirectory = dataDirectory;
        _recordsDirectory = Path.Combine(dataDirectory, "jobs");
        _logsDirectory = Path.Combine(dataDirectory, "logs");
        _binDirectory = Path.Combine(state.WorkDirectory, "job-bin");
        Directory.CreateDirectory(_recordsDirectory);
        Directory.CreateDirectory(_logsDirectory);
        Recover();
    }

    public string DataDirectory { get; }

    /// <summary>The dashboard's address, reported as the driver's agent address once a job runs.</summary>
    public string? DashboardAddress { get; set; }

    /// <summary>Seconds to wait after the stop signal before SIGKILL (Ray: RAY_JOB_STOP_WAIT_TIME_S, default 3).</summary>
    private TimeSpan StopWait(IReadOnlyDictionary<string, string> envVars)
    {
        var text = envVars.GetValueOrDefault("RAY_JOB_STOP_WAIT_TIME_S") ?? Environment.GetEnvironmentVariable("RAY_JOB_STOP_WAIT_TIME_S");
        if (double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var seconds) && seconds >= 0)
        {
            return TimeSpan.FromSeconds(seconds);
        }

        return _state.Options.JobStopWaitTime;
    }

    private static int StopSignal(IReadOnlyDictionary<string, string> envVars)
    {
        var text = envVars.GetValueOrDefault("RAY_JOB_STOP_SIGNAL") ?? Environment.GetEnvironmentVariable("RAY_JOB_STOP_SIGNAL");
        return text == "SIGINT" ? SigInt : SigTerm; // Ray: anything but SIGTERM/SIGINT falls back to SIGTERM
    }

    private long NowMs => _time.GetUtcNow().ToUnixTimeMilliseconds();

    // ------------------------------------------------------------------------------------------
    // Queries
    // ------------------------------------------------------------------------------------------
    public JobRecord? Get(string id)
    {
        lock (_lock)
        {
            if (_jobs.TryGetValue(id, out var job))
            {
                return job.Record.Clone();
            }

            // Ray looks a job up by the JobID hex of its driver too (utils.py: find_job_by_ids).
            return _jobs.Values.FirstOrDefault(j => string.Equals(j.Record.JobId, id, StringComparison.Ordinal))?.Record.Clone();
        }
    }

    private Job Require(string id)
    {
        lock (_lock)
        {
            if (_jobs.TryGetValue(id, out var job))
            {
                return job;
            }

            return _jobs.Values.FirstOrDefault(j => string.Equals(j.Record.JobId, id, StringComparison.Ordinal))
                ?? throw new JobsApiException(404, $"Job {id} does not exist");
        }
    }

    public IReadOnlyList<JobRecord> List()
    {
        lock (_lock)
        {
            return _jobs.Values.Select(j => j.Record.Clone()).OrderBy(r => r.StartTime).ThenBy(r => r.SubmissionId, StringComparer.Ordinal).ToList();
        }
    }

    // ------------------------------------------------------------------------------------------
    // Submit
    // ------------------------------------------------------------------------------------------
    public string Submit(JobSubmitRequest request)
    {
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        var id = request.SubmissionId ?? NewSubmissionId();
        var record = new JobRecord
        {
            SubmissionId = id,
            Entrypoint = request.Entrypoint,
            Metadata = request.Metadata,
            RuntimeEnv = request.RuntimeEnv,
            EntrypointNumCpus = request.NumCpus,
            EntrypointNumGpus = request.NumGpus,
            EntrypointMemory = request.Memory,
            EntrypointResources = request.Resources,
            StartTime = NowMs,
        };
        record.SetStatus(JobStatus.Pending, null, NowMs);
        var job = new Job(record, LogPath(id));
        lock (_lock)
        {
            if (_jobs.ContainsKey(id))
            {
                // Ray's agent raises ValueError (400) and the head wraps it into a 500.
                throw JobsApiException.Traceback(500, "RuntimeError",
                    $"Request failed with status code 400: Traceback (most recent call last):\nValueError: Job with submission_id {id} already exists. Please use a different submission_id.\n.");
            }

            _jobs[id] = job;
        }

        Persist(job);
        AppendLog(job, "Runtime env is setting up.");
        LogJobSubmitted(_logger, id);

        // Ray validates the supervisor's runtime env when it creates the actor, inside submit_job:
        // a bad env_vars fails the job at once (JOB_SUPERVISOR_ACTOR_START_FAILURE), after the 200.
        if (CheckEnvVars(request.RuntimeEnv) is { } envError)
        {
            Finish(job, JobStatus.Failed,
                $"Failed to start supervisor actor {id}: '{envError}'. Full traceback:\nTraceback (most recent call last):\nTypeError: {envError}\n",
                JobErrorTypes.SupervisorStartFailure);
            return id;
        }

        job.Run = Task.Run(() => RunAsync(job));
        return id;
    }

    private static string NewSubmissionId() => "raysubmit_" + new string(RandomNumberGenerator.GetItems<char>(IdAlphabet, 16));

    /// <summary>Ray's parse_and_validate_env_vars, which runs when the supervisor actor is created.</summary>
    private static string? CheckEnvVars(JsonObject? runtimeEnv)
    {
        if (runtimeEnv?["env_vars"] is not { } envVars)
        {
            return null;
        }

        if (envVars is not JsonObject vars)
        {
            return $"runtime_env['env_vars'] must be of type Dict[str, str], got {JobSubmitRequest.PythonType(envVars)}";
        }

        foreach (var (_, value) in vars)
        {
            if (JobSubmitRequest.PythonType(value) != "<class 'str'>")
            {
                return $"runtime_env['env_vars'] must be of type Dict[str, str], but the value {JobSubmitRequest.PythonStr(value)} is of type {JobSubmitRequest.PythonType(value)}";
            }
        }

        return null;
    }

    // ------------------------------------------------------------------------------------------
    // Running a job (Ray's JobSupervisor.run plus the manager's monitor)
    // ------------------------------------------------------------------------------------------
    private async Task RunAsync(Job job)
    {
        var record = job.Record;
        var demand = Demand(record);
        var reserved = false;
        try
        {
            // Entrypoint resources are held by the job for its whole run, as Ray's supervisor
            // actor holds them. On one node, a demand larger than the node can never be met.
            if (demand.Count > 0)
            {
                if (_state.Engine.Scheduler.CheckFeasible(demand) is { } infeasible)
                {
                    Finish(job, JobStatus.Failed, $"Job supervisor actor could not be scheduled: {infeasible.Replace("The task needs", "The job's entrypoint needs", StringComparison.Ordinal)}", JobErrorTypes.SupervisorUnschedulable);
                    return;
                }

                var grant = _state.Engine.Scheduler.ReserveAsync(demand);
                var timeout = _state.Options.JobStartTimeout;
                try
                {
                    await grant.WaitAsync(timeout, _time, job.Stop.Token).ConfigureAwait(false);
                    reserved = true;
                }
                catch (Exception ex) when (ex is TimeoutException or OperationCanceledException)
                {
                    // The reservation cannot be withdrawn: give it back when it is granted.
                    _ = grant.ContinueWith(_ => _state.Engine.Scheduler.Unreserve(demand), CancellationToken.None, TaskContinuationOptions.OnlyOnRanToCompletion, TaskScheduler.Default);
                    if (ex is TimeoutException)
                    {
                        Finish(job, JobStatus.Failed,
                            string.Create(CultureInfo.InvariantCulture, $"Job supervisor actor failed to start within {timeout.TotalSeconds:0.###} seconds. This timeout can be configured by setting the environment variable RAY_JOB_START_TIMEOUT_SECONDS.") +
                            " The job asked for entrypoint resources that stayed in use by other jobs, tasks or actors; check what holds them.",
                            JobErrorTypes.SupervisorStartTimeout);
                    }
                    else
                    {
                        Finish(job, JobStatus.Stopped, null, null);
                    }

                    return;
                }
            }

            WorkerEnvironment environment;
            try
            {
                environment = await _state.Environments.ResolveAsync(ToPlain(record.RuntimeEnv), job.Stop.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (job.Stop.IsCancellationRequested)
            {
                Finish(job, JobStatus.Stopped, null, null);
                return;
            }
            catch (Exception ex)
            {
                var message = $"runtime_env setup failed: {ex.Message}";
                AppendRaw(job, message); // Ray appends the failure to the driver log, without a newline
                Finish(job, JobStatus.Failed, message, JobErrorTypes.RuntimeEnvSetupFailure);
                return;
            }

            await RunEntrypointAsync(job, environment).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !_shutdown.IsCancellationRequested)
        {
            LogJobCrashed(_logger, record.SubmissionId, ex);
            Finish(job, JobStatus.Failed, $"Unexpected error occurred: {ex.Message}", JobErrorTypes.SupervisorUnknownFailure);
        }
        finally
        {
            if (reserved)
            {
                _state.Engine.Scheduler.Unreserve(demand);
            }

            _state.CloseJobSessions(record.SubmissionId);
        }
    }

    private async Task RunEntrypointAsync(Job job, WorkerEnvironment environment)
    {
        var record = job.Record;
        lock (_lock)
        {
            if (job.Stop.IsCancellationRequested)
            {
                Finish(job, JobStatus.Stopped, null, null);
                return;
            }

            record.DriverAgentHttpAddress = DashboardAddress;
            record.DriverNodeId = _state.NodeId;
            record.SetStatus(JobStatus.Running, null, NowMs);
        }

        Persist(job);
        job.Changed();
        var python = environment.PythonExecutable ?? _state.PythonExecutable;
        var start = new ProcessStartInfo(Setsid ?? _state.PythonExecutable)
        {
            UseShellExecute = false,
            WorkingDirectory = environment.WorkingDirectory ?? _state.WorkDirectory,
        };
        if (Setsid is not null)
        {
            // util-linux setsid (a few ms) rather than a Python launcher (a Python start).
            foreach (var argument in new[] { "/bin/sh", "-c", ShellLauncher, "sh", job.LogPath, record.Entrypoint })
            {
                start.ArgumentList.Add(argument);
            }
        }
        else
        {
            start.ArgumentList.Add("-c");
            start.ArgumentList.Add(Launcher);
            start.ArgumentList.Add(job.LogPath);
            start.ArgumentList.Add(record.Entrypoint);
        }
        ConfigureEnvironment(start.Environment, job, environment, python);
        AppendLog(job, $"Running entrypoint for job {record.SubmissionId}: {record.Entrypoint}", plain: true);

        Process process;
        try
        {
            process = Process.Start(start) ?? throw new InvalidOperationException("Process.Start returned null.");
        }
        catch (Exception ex) when (ex is System.ComponentModel.Win32Exception or InvalidOperationException)
        {
            Finish(job, JobStatus.Failed, $"Traceback (most recent call last):\n{ex.GetType().Name}: {ex.Message}\n", JobErrorTypes.EntrypointStartError);
            return;
        }

        using (process)
        {
            lock (_lock)
            {
                record.ProcessGroup = process.Id; // setsid: the launcher's pid is the group id
            }

            Persist(job);
            LogJobStarted(_logger, record.SubmissionId, process.Id);
            var exited = process.WaitForExitAsync(CancellationToken.None);
            try
            {
                await exited.WaitAsync(job.Stop.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                await StopProcessGroupAsync(job, process, exited, environment).ConfigureAwait(false);
                if (_shutdown.IsCancellationRequested)
                {
                    return; // the server is going away: the record stays as it was, recovery marks it
                }

                Finish(job, JobStatus.Stopped, null, null);
                return;
            }

            var code = process.ExitCode;
            if (code == 0)
            {
                Finish(job, JobStatus.Succeeded, null, null, exitCode: 0);
                return;
            }

            var tail = LastLines(job.LogPath);
            var message = tail.Length == 0
                ? $"Job entrypoint command failed with exit code {code}. No logs available."
                : $"Job entrypoint command failed with exit code {code}, last available logs (truncated to 20,000 chars):\n{tail}";
            Finish(job, JobStatus.Failed, message, JobErrorTypes.EntrypointError, exitCode: code);
        }
    }

    /// <summary>Ray's stop: the stop signal to the whole process group, SIGKILL to what is left after the grace period.</summary>
    private async Task StopProcessGroupAsync(Job job, Process process, Task exited, WorkerEnvironment environment)
    {
        var group = process.Id;
        var grace = StopWait(environment.EnvironmentVariables);
        var signal = StopSignal(environment.EnvironmentVariables);
        LogJobStopping(_logger, job.Record.SubmissionId, signal, grace.TotalSeconds);
        _ = SendSignal(-group, signal);
        var deadline = _time.GetTimestamp();
        while (_time.GetElapsedTime(deadline) < grace)
        {
            // Wait for the shell, then for anything else left in its group.
            if (exited.IsCompleted && SendSignal(-group, 0) != 0)
            {
                break;
            }

            await Task.WhenAny(exited, Task.Delay(TimeSpan.FromMilliseconds(20), _time)).ConfigureAwait(false);
        }

        if (SendSignal(-group, 0) == 0)
        {
            _ = SendSignal(-group, SigKill);
        }

        await exited.ConfigureAwait(false);
    }

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int SendSignal(int pid, int signal);

    private void ConfigureEnvironment(IDictionary<string, string?> env, Job job, WorkerEnvironment environment, string python)
    {
        var record = job.Record;

        // Ray removes its internal flags from the driver's environment (ray_constants.RAY_INTERNAL_FLAGS).
        env.Remove("RAY_JOB_ID");
        env.Remove("RAY_RAYLET_PID");
        env.Remove("RAY_OVERRIDE_NODE_ID_FOR_TESTING");
        foreach (var (name, value) in environment.EnvironmentVariables)
        {
            env[name] = value;
        }

        var paths = new List<string>();
        if (environment.WorkingDirectory is not null)
        {
            paths.Add(environment.WorkingDirectory);
        }

        paths.AddRange(environment.SysPath);
        paths.Add(_state.DriverModuleDirectory);
        if (env.TryGetValue("PYTHONPATH", out var existing) && !string.IsNullOrEmpty(existing))
        {
            paths.Add(existing);
        }

        env["PYTHONPATH"] = string.Join(Path.PathSeparator, paths);

        // `python` in the entrypoint is the server's interpreter (or the job's pip env), as on a
        // Ray node the job's python is the cluster's: the driver and the workers then agree.
        var bin = PythonBin(python);
        env["PATH"] = bin + Path.PathSeparator + (env.TryGetValue("PATH", out var path) ? path : string.Empty);
        env["PYTHONUNBUFFERED"] = "1";
        env["RAY_worker_niceness"] = "0";

        // Ray sets RAY_ADDRESS to the GCS address. Here the cluster is reached at its Ray Client
        // address, which both RaySession.ConnectAsync() and the embedded `ray` module read.
        env["RAY_ADDRESS"] = _state.ClientAddress;
        var metadata = new JsonObject { ["job_submission_id"] = record.SubmissionId, ["job_name"] = record.SubmissionId };
        foreach (var (key, value) in record.Metadata ?? [])
        {
            if (key != "job_submission_id")
            {
                metadata[key] = value;
            }
        }

        env["RAY_JOB_CONFIG_JSON_ENV_VAR"] = new JsonObject { ["runtime_env"] = record.RuntimeEnv?.DeepClone() ?? new JsonObject(), ["metadata"] = metadata }.ToJsonString();
        var (address, token) = _state.RegisterJobDriver(record.SubmissionId, environment, record.RuntimeEnv, this);
        env["RAYCLIENT_DRIVER_ADDRESS"] = address;
        env["RAYCLIENT_DRIVER_TOKEN"] = token;
    }

    /// <summary>A directory holding <c>python</c> and <c>python3</c> links to <paramref name="python"/>.</summary>
    private string PythonBin(string python)
    {
        var dir = Path.Combine(_binDirectory, Convert.ToHexStringLower(SHA1.HashData(Encoding.UTF8.GetBytes(python)))[..12]);
        if (!Directory.Exists(dir))
        {
            var temp = dir + "." + Guid.NewGuid().ToString("N");
            Directory.CreateDirectory(temp);
            File.CreateSymbolicLink(Path.Combine(temp, "python"), python);
            File.CreateSymbolicLink(Path.Combine(temp, "python3"), python);
            try
            {
                Directory.Move(temp, dir);
            }
            catch (IOException)
            {
                Directory.Delete(temp, recursive: true); // another job made it first
            }
        }

        return dir;
    }

    /// <summary>Called by the driver link when the job's driver calls <c>ray.init()</c>.</summary>
    public void OnDriverConnected(string submissionId, string jobIdHex, int pid)
    {
        Job? job;
        lock (_lock)
        {
            if (!_jobs.TryGetValue(submissionId, out job))
            {
                return;
            }

            job.Record.JobId = jobIdHex;
            job.Record.DriverPid = pid;
        }

        Persist(job);
    }

    private static Dictionary<string, double> Demand(JobRecord record)
    {
        var demand = new Dictionary<string, double>(StringComparer.Ordinal);
        if (record.EntrypointNumCpus > 0)
        {
            demand["CPU"] = record.EntrypointNumCpus;
        }

        if (record.EntrypointNumGpus > 0)
        {
            demand["GPU"] = record.EntrypointNumGpus;
        }

        if (record.EntrypointMemory > 0)
        {
            demand["memory"] = record.EntrypointMemory;
        }

        foreach (var (name, amount) in record.EntrypointResources ?? [])
        {
            if (amount > 0)
            {
                demand[name] = demand.GetValueOrDefault(name) + amount;
            }
        }

        return demand;
    }

    /// <summary>A runtime env from JSON as the plain objects the server's env resolution reads (as from a pickle).</summary>
    internal static Dictionary<string, object?> ToPlain(JsonObject? env)
    {
        var result = new Dictionary<string, object?>(StringComparer.Ordinal);
        foreach (var (key, value) in env ?? [])
        {
            result[key] = Plain(value);
        }

        return result;

        static object? Plain(JsonNode? node) => node switch
        {
            null => null,
            JsonObject obj => obj.ToDictionary(kv => kv.Key, kv => Plain(kv.Value), StringComparer.Ordinal),
            JsonArray array => array.Select(Plain).ToList(),
            JsonValue value => value.GetValueKind() switch
            {
                System.Text.Json.JsonValueKind.String => value.GetValue<string>(),
                System.Text.Json.JsonValueKind.True => true,
                System.Text.Json.JsonValueKind.False => false,
                System.Text.Json.JsonValueKind.Number when value.TryGetValue<int>(out var i) => i,
                System.Text.Json.JsonValueKind.Number when value.TryGetValue<long>(out var l) => l,
                System.Text.Json.JsonValueKind.Number => value.GetValue<double>(),
                _ => null,
            },
            _ => null,
        };
    }

    /// <summary>Moves a job to a terminal status (once: Ray refuses to leave a terminal status).</summary>
    private void Finish(Job job, JobStatus status, string? message, string? errorType, int? exitCode = null)
    {
        lock (_lock)
        {
            if (job.Record.Status.IsTerminal() || _shutdown.IsCancellationRequested)
            {
                return;
            }

            job.Record.SetStatus(status, message, NowMs, errorType, exitCode);
        }

        Persist(job);
        LogJobFinished(_logger, job.Record.SubmissionId, status.ToWire());
        job.Changed();
    }

    // ------------------------------------------------------------------------------------------
    // Stop and delete
    // ------------------------------------------------------------------------------------------
    /// <summary>Asks a job to stop; false when it has already finished (Ray: no supervisor left).</summary>
    public bool Stop(string id)
    {
        var job = Require(id);
        lock (_lock)
        {
            if (job.Record.Status.IsTerminal() || job.Run is null)
            {
                return false;
            }
        }

        job.Stop.Cancel();
        return true;
    }

    public bool Delete(string id)
    {
        var job = Require(id);
        lock (job)
        {
            lock (_lock)
            {
                if (!job.Record.Status.IsTerminal())
                {
                    throw JobsApiException.Traceback(500, "RuntimeError",
                        $"Attempted to delete job '{job.Record.SubmissionId}', but it is in a non-terminal state {job.Record.Status.ToWire()}.");
                }

                _jobs.Remove(job.Record.SubmissionId);
            }

            // Ray removes the record and keeps the driver log.
            File.Delete(RecordPath(job.Record.SubmissionId));
        }

        return true;
    }

    // ------------------------------------------------------------------------------------------
    // Logs
    // ------------------------------------------------------------------------------------------
    /// <summary>The whole driver log so far; empty while the job has no driver (Ray: no agent address yet).</summary>
    public string ReadLogs(string id)
    {
        var job = Require(id);
        lock (_lock)
        {
            if (job.Record.DriverAgentHttpAddress is null)
            {
                return string.Empty;
            }
        }

        try
        {
            using var stream = new FileStream(job.LogPath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            var size = stream.Length;
            if (size <= MaxLogRead)
            {
                using var reader = new StreamReader(stream, new UTF8Encoding(false, false));
                return reader.ReadToEnd();
            }

            // Newest Ray caps the read (RAY_JOB_LOG_MAX_READ_BYTES) and returns the tail from a whole line.
            stream.Seek(size - MaxLogRead, SeekOrigin.Begin);
            using var tailReader = new StreamReader(stream, new UTF8Encoding(false, false));
            var text = tailReader.ReadToEnd();
            var newline = text.IndexOf('\n', StringComparison.Ordinal);
            return string.Create(CultureInfo.InvariantCulture, $"[LOG TRUNCATED — showing last 16 MiB of {size} total]\n") + (newline >= 0 ? text[(newline + 1)..] : text);
        }
        catch (FileNotFoundException)
        {
            return string.Empty;
        }
    }

    /// <summary>
    /// Follows the driver log from its start until the job has ended, in Ray's chunks (at most 10
    /// lines, cut after 20,000 characters; a chunk may end inside a line). Waits (without
    /// messages) while the job has no driver; ends at once for a job that ended before it had one.
    /// </summary>
    public async IAsyncEnumerable<string> TailAsync(string id, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var job = Require(id);
        while (true)
        {
            Task changed;
            lock (_lock)
            {
                if (job.Record.DriverAgentHttpAddress is not null)
                {
                    break;
                }

                if (job.Record.Status.IsTerminal())
                {
                    yield break;
                }

                changed = job.ChangedTask;
            }

            await changed.WaitAsync(cancellationToken).ConfigureAwait(false);
        }

        FileStream? stream = null;
        try
        {
            var decoder = new UTF8Encoding(false, false).GetDecoder();
            var bytes = new byte[64 * 1024];
            var chars = new char[bytes.Length + 4];
            var pending = new StringBuilder();
            while (true)
            {
                bool terminal;
                Task changed;
                lock (_lock)
                {
                    terminal = job.Record.Status.IsTerminal();
                    changed = job.ChangedTask;
                }

                stream ??= File.Exists(job.LogPath) ? new FileStream(job.LogPath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete) : null;
                var readAny = false;
                if (stream is not null)
                {
                    int n;
                    while ((n = await stream.ReadAsync(bytes, cancellationToken).ConfigureAwait(false)) > 0)
                    {
                        readAny = true;
                        var count = decoder.GetChars(bytes, 0, n, chars, 0, flush: false);
                        pending.Append(chars, 0, count);
                    }
                }

                foreach (var chunk in Chunks(pending))
                {
                    yield return chunk;
                }

                if (!readAny && terminal)
                {
                    yield break; // read to the end once more after the job ended (Ray does the same)
                }

                if (!readAny)
                {
                    await Task.WhenAny(changed, Task.Delay(TimeSpan.FromMilliseconds(50), _time)).WaitAsync(cancellationToken).ConfigureAwait(false);
                }
            }
        }
        finally
        {
            if (stream is not null)
            {
                await stream.DisposeAsync().ConfigureAwait(false);
            }
        }
    }

    /// <summary>Splits what was read into Ray's tail messages and empties <paramref name="pending"/>.</summary>
    internal static List<string> Chunks(StringBuilder pending)
    {
        var result = new List<string>();
        var text = pending.ToString();
        pending.Clear();
        var start = 0;
        while (start < text.Length)
        {
            var end = start;
            var lines = 0;
            while (end < text.Length && lines < TailLines && end - start < TailChars)
            {
                var newline = text.IndexOf('\n', end);
                end = newline < 0 ? text.Length : newline + 1;
                lines++;
            }

            if (end - start > TailChars)
            {
                end = start + TailChars;
                if (char.IsHighSurrogate(text[end - 1]))
                {
                    end--;
                }
            }

            result.Add(text[start..end]);
            start = end;
        }

        return result;
    }

    /// <summary>The last 10 lines of the log, at most 20,000 characters (Ray's failure message tail).</summary>
    private static string LastLines(string path)
    {
        try
        {
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            stream.Seek(Math.Max(0, stream.Length - (4 * TailChars)), SeekOrigin.Begin);
            using var reader = new StreamReader(stream, new UTF8Encoding(false, false));
            var lines = reader.ReadToEnd().Split('\n');
            var count = lines.Length > 0 && lines[^1].Length == 0 ? lines.Length - 1 : lines.Length;
            var tail = string.Join('\n', lines[Math.Max(0, count - TailLines)..count]);
            return tail.Length > TailChars ? tail[^TailChars..] : tail;
        }
        catch (FileNotFoundException)
        {
            return string.Empty;
        }
    }

    /// <summary>A line in the driver log formatted as Ray's job manager logger writes it.</summary>
    private void AppendLog(Job job, string message, bool plain = false)
    {
        var line = plain
            ? message + "\n"
            : $"{_time.GetLocalNow().ToString("yyyy-MM-dd HH:mm:ss,fff", CultureInfo.InvariantCulture)}\tINFO job_manager.py:0 -- {message}\n";
        AppendRaw(job, line);
    }

    private static void AppendRaw(Job job, string text) => File.AppendAllText(job.LogPath, text, new UTF8Encoding(false));

    // ------------------------------------------------------------------------------------------
    // Persistence
    // ------------------------------------------------------------------------------------------
    /// <summary>A file-name-safe form of a submission id (ids are any string in Ray).</summary>
    private static string SafeName(string id) =>
        id.Length is > 0 and <= 200 && id is not ("." or "..") && id.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '-' or '.')
            ? id
            : "x-" + Convert.ToHexStringLower(Encoding.UTF8.GetBytes(id))[..Math.Min(400, id.Length * 2)] + "-" + Convert.ToHexStringLower(SHA1.HashData(Encoding.UTF8.GetBytes(id)))[..8];

    private string LogPath(string id) => Path.Combine(_logsDirectory, $"job-driver-{SafeName(id)}.log");

    private string RecordPath(string id) => Path.Combine(_recordsDirectory, $"{SafeName(id)}.json");

    private void Persist(Job job)
    {
        // One writer per job at a time, and the snapshot taken inside: a slower writer can never
        // put an older status on disk after a newer one.
        lock (job)
        {
            string json;
            lock (_lock)
            {
                if (!_jobs.TryGetValue(job.Record.SubmissionId, out var current) || current != job)
                {
                    return; // deleted
                }

                json = job.Record.ToStored().ToJsonString();
            }

            var path = RecordPath(job.Record.SubmissionId);
            var temp = path + ".tmp";
            File.WriteAllText(temp, json);
            File.Move(temp, path, overwrite: true);
        }
    }

    /// <summary>
    /// Loads the records a previous run of the server left. A job that had not finished when that
    /// server stopped cannot be reattached to: it is marked FAILED, saying why.
    /// </summary>
    private void Recover()
    {
        foreach (var file in Directory.EnumerateFiles(_recordsDirectory, "*.json"))
        {
            JobRecord record;
            try
            {
                record = JobRecord.FromStored(JsonNode.Parse(File.ReadAllText(file)) as JsonObject ?? throw new FormatException("not an object"));
            }
            catch (Exception ex) when (ex is FormatException or System.Text.Json.JsonException or InvalidOperationException or IOException or NullReferenceException)
            {
                LogRecordUnreadable(_logger, Path.GetFileName(file), ex.Message);
                continue;
            }

            var job = new Job(record, LogPath(record.SubmissionId));
            _jobs[record.SubmissionId] = job;
            if (!record.Status.IsTerminal())
            {
                var was = record.Status.ToWire();
                if (record.ProcessGroup is { } group && IsJobProcess(group, record.SubmissionId))
                {
                    _ = SendSignal(-group, SigKill); // a driver left behind by a server that crashed
                }

                var message = $"Job supervisor actor died: the RayClient embedded server stopped while the job was {was}, and a restarted server cannot reattach to its driver.";
                record.SetStatus(JobStatus.Failed, message, NowMs, JobErrorTypes.SupervisorDied);
                AppendRaw(job, message);
                Persist(job);
                LogJobRecovered(_logger, record.SubmissionId, was);
            }
        }
    }

    /// <summary>
    /// Whether <paramref name="pid"/> is still this job's entrypoint (its environment names the
    /// job), so that a recycled pid never gets a signal meant for a driver left behind.
    /// </summary>
    private static bool IsJobProcess(int pid, string submissionId)
    {
        try
        {
            var environ = File.ReadAllText($"/proc/{pid.ToString(CultureInfo.InvariantCulture)}/environ");
            var marker = "RAY_JOB_CONFIG_JSON_ENV_VAR=";
            var start = environ.IndexOf(marker, StringComparison.Ordinal);
            if (start < 0)
            {
                return false;
            }

            var end = environ.IndexOf('\0', start);
            var config = JsonNode.Parse(environ[(start + marker.Length)..(end < 0 ? environ.Length : end)]);
            return (string?)config?["metadata"]?["job_submission_id"] == submissionId;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or System.Text.Json.JsonException)
        {
            return false; // gone, not ours, or no /proc (macOS): leave it alone
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        // Running entrypoints share the server's fate, as Ray's drivers share their supervisor's.
        // Their records stay RUNNING on disk; the next server marks them FAILED.
        await _shutdown.CancelAsync().ConfigureAwait(false);
        List<Task> runs;
        lock (_lock)
        {
            runs = _jobs.Values.Where(j => j.Run is not null && !j.Record.Status.IsTerminal()).Select(j => j.Run!).ToList();
            foreach (var job in _jobs.Values)
            {
                job.Stop.Cancel();
            }
        }

        try
        {
            await Task.WhenAll(runs).WaitAsync(TimeSpan.FromSeconds(15)).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is TimeoutException or OperationCanceledException)
        {
        }

        _shutdown.Dispose();
    }

    private sealed class Job(JobRecord record, string logPath)
    {
        private TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public JobRecord Record { get; } = record;

        public string LogPath { get; } = logPath;

        public CancellationTokenSource Stop { get; } = new();

        public Task? Run { get; set; }

        /// <summary>Completes at the next status change.</summary>
        public Task ChangedTask => Volatile.Read(ref _changed).Task;

        public void Changed() => Interlocked.Exchange(ref _changed, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();
    }

    [LoggerMessage(EventId = ServerEventIds.JobSubmitted, EventName = nameof(ServerEventIds.JobSubmitted), Level = LogLevel.Information, Message = "Job {SubmissionId} submitted.")]
    private static partial void LogJobSubmitted(ILogger logger, string submissionId);

    [LoggerMessage(EventId = ServerEventIds.JobStarted, EventName = nameof(ServerEventIds.JobStarted), Level = LogLevel.Information, Message = "Job {SubmissionId} started its entrypoint (process group {Group}).")]
    private static partial void LogJobStarted(ILogger logger, string submissionId, int group);

    [LoggerMessage(EventId = ServerEventIds.JobFinished, EventName = nameof(ServerEventIds.JobFinished), Level = LogLevel.Information, Message = "Job {SubmissionId} is {Status}.")]
    private static partial void LogJobFinished(ILogger logger, string submissionId, string status);

    [LoggerMessage(EventId = ServerEventIds.JobStopping, EventName = nameof(ServerEventIds.JobStopping), Level = LogLevel.Information, Message = "Stopping job {SubmissionId}: signal {Signal}, SIGKILL after {Grace} s.")]
    private static partial void LogJobStopping(ILogger logger, string submissionId, int signal, double grace);

    [LoggerMessage(EventId = ServerEventIds.JobCrashed, EventName = nameof(ServerEventIds.JobCrashed), Level = LogLevel.Error, Message = "Job {SubmissionId} failed inside the server.")]
    private static partial void LogJobCrashed(ILogger logger, string submissionId, Exception exception);

    [LoggerMessage(EventId = ServerEventIds.JobRecovered, EventName = nameof(ServerEventIds.JobRecovered), Level = LogLevel.Warning, Message = "Job {SubmissionId} was {Status} when the previous server stopped; marked FAILED.")]
    private static partial void LogJobRecovered(ILogger logger, string submissionId, string status);

    [LoggerMessage(EventId = ServerEventIds.JobRecordUnreadable, EventName = nameof(ServerEventIds.JobRecordUnreadable), Level = LogLevel.Warning, Message = "Job record {File} could not be read and was skipped: {Reason}")]
    private static partial void LogRecordUnreadable(ILogger logger, string file, string reason);
}
