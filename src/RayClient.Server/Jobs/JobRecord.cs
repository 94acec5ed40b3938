using System.Globalization;
using System.Text.Json.Nodes;

namespace RayClient.Server.Jobs;

/// <summary>Ray's job statuses (ray: python/ray/dashboard/modules/job/common.py, JobStatus).</summary>
internal enum JobStatus
{
    Pending,
    Running,
    Stopped,
    Succeeded,
    Failed,
}

/// <summary>Wire names and helpers for <see cref="JobStatus"/>.</summary>
internal static class JobStatusNames
{
    public static string ToWire(this JobStatus status) => status switch
    {
        JobStatus.Pending => "PENDING",
        JobStatus.Running => "RUNNING",
        JobStatus.Stopped => "STOPPED",
        JobStatus.Succeeded => "SUCCEEDED",
        _ => "FAILED",
    };

    public static JobStatus Parse(string? text) => text switch
    {
        "PENDING" => JobStatus.Pending,
        "RUNNING" => JobStatus.Running,
        "STOPPED" => JobStatus.Stopped,
        "SUCCEEDED" => JobStatus.Succeeded,
        _ => JobStatus.Failed,
    };

    public static bool IsTerminal(this JobStatus status) => status is JobStatus.Stopped or JobStatus.Succeeded or JobStatus.Failed;
}

/// <summary>Ray's <c>error_type</c> values (ray: job_manager.py, JobErrorType).</summary>
internal static class JobErrorTypes
{
    public const string SupervisorStartTimeout = "JOB_SUPERVISOR_ACTOR_START_TIMEOUT";
    public const string SupervisorStartFailure = "JOB_SUPERVISOR_ACTOR_START_FAILURE";
    public const string SupervisorUnschedulable = "JOB_SUPERVISOR_ACTOR_UNSCHEDULABLE";
    public const string SupervisorDied = "JOB_SUPERVISOR_ACTOR_DIED";
    public const string SupervisorUnknownFailure = "JOB_SUPERVISOR_ACTOR_UNKNOWN_FAILURE";
    public const string RuntimeEnvSetupFailure = "RUNTIME_ENV_SETUP_FAILURE";
    public const string EntrypointStartError = "JOB_ENTRYPOINT_COMMAND_START_ERROR";
    public const string EntrypointError = "JOB_ENTRYPOINT_COMMAND_ERROR";
}

/// <summary>
/// One submitted job: Ray's <c>JobInfo</c> plus what the REST <c>JobDetails</c> adds (the driver).
/// Mutated only under the job manager's lock; <see cref="Clone"/> gives readers a snapshot.
/// </summary>
internal sealed class JobRecord
{
    public required string SubmissionId { get; init; }

    public required string Entrypoint { get; init; }

    public JobStatus Status { get; set; }

    public string? Message { get; set; }

    public string? ErrorType { get; set; }

    /// <summary>Milliseconds since the epoch, set at submission (as Ray does, not when the job starts).</summary>
    public long StartTime { get; set; }

    public long? EndTime { get; set; }

    public Dictionary<string, string>? Metadata { get; init; }

    public JsonObject? RuntimeEnv { get; init; }

    public double EntrypointNumCpus { get; init; }

    public double EntrypointNumGpus { get; init; }

    public long EntrypointMemory { get; init; }

    public Dictionary<string, double>? EntrypointResources { get; init; }

    public string? DriverAgentHttpAddress { get; set; }

    public string? DriverNodeId { get; set; }

    public int? DriverExitCode { get; set; }

    /// <summary>Ray JobID hex of the (last) driver that called <c>ray.init()</c>, or null.</summary>
    public string? JobId { get; set; }

    /// <summary>Process id of that driver.</summary>
    public int? DriverPid { get; set; }

    /// <summary>Process group of the running entrypoint (not persisted as meaningful after a restart).</summary>
    public int? ProcessGroup { get; set; }

    public bool ResourcesRequested =>
        EntrypointNumCpus > 0 || EntrypointNumGpus > 0 || EntrypointMemory > 0 || EntrypointResources is { Count: > 0 };

    /// <summary>Sets a status with Ray's default message when none is given (ray: common.py, JobInfo.__post_init__).</summary>
    public void SetStatus(JobStatus status, string? message, long nowMs, string? errorType = null, int? exitCode = null)
    {
        Status = status;
        Message = message ?? DefaultMessage(status);
        ErrorType = errorType;
        DriverExitCode = exitCode;
        if (status.IsTerminal())
        {
            EndTime = nowMs;
        }
    }

    public string DefaultMessage(JobStatus status)
    {
        switch (status)
        {
            case JobStatus.Pending:
                var message = "Job has not started yet.";
                if (ResourcesRequested)
                {
                    message += " It may be waiting for resources (CPUs, GPUs, memory, custom resources) to become available.";
                }

                if (RuntimeEnv is { Count: > 0 })
                {
                    message += " It may be waiting for the runtime environment to be set up.";
                }

                return message;
            case JobStatus.Running:
                return "Job is currently running.";
            case JobStatus.Stopped:
                return "Job was intentionally stopped.";
            case JobStatus.Succeeded:
                return "Job finished successfully.";
            default:
                return "Job failed.";
        }
    }

    public JobRecord Clone()
    {
        var copy = (JobRecord)MemberwiseClone();
        return copy;
    }

    /// <summary>The REST <c>JobDetails</c> object, fields in the order Ray's pydantic model writes them.</summary>
    public JsonObject ToDetails()
    {
        return new JsonObject
        {
            ["type"] = "SUBMISSION",
            ["job_id"] = JobId,
            ["submission_id"] = SubmissionId,
            ["driver_info"] = JobId is null ? null : new JsonObject
            {
                ["id"] = JobId,
                ["node_ip_address"] = "127.0.0.1",
                ["pid"] = DriverPid?.ToString(CultureInfo.InvariantCulture),
            },
            ["status"] = Status.ToWire(),
            ["entrypoint"] = Entrypoint,
            ["message"] = Message,
            ["error_type"] = ErrorType,
            ["start_time"] = StartTime,
            ["end_time"] = EndTime,
            ["metadata"] = Metadata is null ? null : new JsonObject(Metadata.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)JsonValue.Create(kv.Value)))),
            ["runtime_env"] = RuntimeEnv?.DeepClone(),
            ["driver_agent_http_address"] = DriverAgentHttpAddress,
            ["driver_node_id"] = DriverNodeId,
            ["driver_exit_code"] = DriverExitCode,
        };
    }

    /// <summary>The stored form (Ray's JobInfo fields plus the driver), one JSON file per job.</summary>
    public JsonObject ToStored()
    {
        var stored = ToDetails();
        stored["entrypoint_num_cpus"] = EntrypointNumCpus;
        stored["entrypoint_num_gpus"] = EntrypointNumGpus;
        stored["entrypoint_memory"] = EntrypointMemory;
        stored["entrypoint_resources"] = EntrypointResources is null ? null
            : new JsonObject(EntrypointResources.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)JsonValue.Create(kv.Value))));
        stored["driver_pid"] = DriverPid;
        stored["process_group"] = ProcessGroup;
        return stored;
    }

    public static JobRecord FromStored(JsonObject stored)
    {
        var record = new JobRecord
        {
            SubmissionId = (string)stored["submission_id"]!,
            Entrypoint = (string?)stored["entrypoint"] ?? string.Empty,
            Metadata = stored["metadata"] is JsonObject metadata ? metadata.ToDictionary(kv => kv.Key, kv => (string?)kv.Value ?? string.Empty, StringComparer.Ordinal) : null,
            RuntimeEnv = stored["runtime_env"]?.DeepClone() as JsonObject,
            EntrypointNumCpus = (double?)stored["entrypoint_num_cpus"] ?? 0,
            EntrypointNumGpus = (double?)stored["entrypoint_num_gpus"] ?? 0,
            EntrypointMemory = (long?)stored["entrypoint_memory"] ?? 0,
            EntrypointResources = stored["entrypoint_resources"] is JsonObject resources
                ? resources.ToDictionary(kv => kv.Key, kv => (double?)kv.Value ?? 0, StringComparer.Ordinal) : null,
        };
        record.Status = JobStatusNames.Parse((string?)stored["status"]);
        record.Message = (string?)stored["message"];
        record.ErrorType = (string?)stored["error_type"];
        record.StartTime = (long?)stored["start_time"] ?? 0;
        record.EndTime = (long?)stored["end_time"];
        record.DriverAgentHttpAddress = (string?)stored["driver_agent_http_address"];
        record.DriverNodeId = (string?)stored["driver_node_id"];
        record.DriverExitCode = (int?)stored["driver_exit_code"];
        record.JobId = (string?)stored["job_id"];
        record.DriverPid = (int?)stored["driver_pid"];
        record.ProcessGroup = (int?)stored["process_group"];
        return record;
    }
}
