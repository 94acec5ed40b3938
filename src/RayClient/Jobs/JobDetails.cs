using System.Text.Json.Nodes;
using System.Text.Json.Serialization;

namespace RayClient.Jobs;

/// <summary>
/// A job as <c>GET /api/jobs/{id}</c> and <c>GET /api/jobs/</c> return it
/// (ray:python/ray/dashboard/modules/job/pydantic_models.py :: JobDetails). Fields a newer server
/// adds are ignored.
/// </summary>
public sealed record JobDetails
{
    /// <summary><see cref="JobType.Submission"/> for jobs of the Jobs API, <see cref="JobType.Driver"/> for other drivers.</summary>
    [JsonPropertyName("type")]
    public JobType Type { get; init; }

    /// <summary>
    /// Ray's core JobID (hex) of the job's last driver; null until the entrypoint calls
    /// <c>ray.init()</c>, and for ever if it never does. Not the submission id.
    /// </summary>
    [JsonPropertyName("job_id")]
    public string? JobId { get; init; }

    /// <summary>The submission id (<c>raysubmit_…</c> or the caller's); null for DRIVER jobs.</summary>
    [JsonPropertyName("submission_id")]
    public string? SubmissionId { get; init; }

    /// <summary>The job's last driver, once one registered.</summary>
    [JsonPropertyName("driver_info")]
    public DriverInfo? DriverInfo { get; init; }

    /// <summary>The status.</summary>
    [JsonPropertyName("status")]
    public JobStatus Status { get; init; }

    /// <summary>The shell command the job runs.</summary>
    [JsonPropertyName("entrypoint")]
    public string Entrypoint { get; init; } = string.Empty;

    /// <summary>What the status means, e.g. <c>Job finished successfully.</c> or the tail of a failed job's log.</summary>
    [JsonPropertyName("message")]
    public string? Message { get; init; }

    /// <summary>Ray's error type of a failed job, e.g. <c>RUNTIME_ENV_SETUP_FAILURE</c> (an open set; null on older servers).</summary>
    [JsonPropertyName("error_type")]
    public string? ErrorType { get; init; }

    /// <summary>Milliseconds since the Unix epoch when the job was submitted.</summary>
    [JsonPropertyName("start_time")]
    public long? StartTime { get; init; }

    /// <summary>Milliseconds since the Unix epoch when the job reached a terminal status.</summary>
    [JsonPropertyName("end_time")]
    public long? EndTime { get; init; }

    /// <summary>The job's metadata (what was submitted, merged with the client's defaults).</summary>
    [JsonPropertyName("metadata")]
    public Dictionary<string, string>? Metadata { get; init; }

    /// <summary>The runtime env as the cluster stored it (URIs, not local paths).</summary>
    [JsonPropertyName("runtime_env")]
    public JsonObject? RuntimeEnv { get; init; }

    /// <summary>Address of the agent on the node running the driver; null while PENDING.</summary>
    [JsonPropertyName("driver_agent_http_address")]
    public string? DriverAgentHttpAddress { get; init; }

    /// <summary>Node id of the node running the driver; null while PENDING.</summary>
    [JsonPropertyName("driver_node_id")]
    public string? DriverNodeId { get; init; }

    /// <summary>The entrypoint's exit code once it SUCCEEDED or FAILED (negative: killed by that signal); null otherwise.</summary>
    [JsonPropertyName("driver_exit_code")]
    public int? DriverExitCode { get; init; }

    /// <summary><see cref="StartTime"/> as a <see cref="DateTimeOffset"/>.</summary>
    [JsonIgnore]
    public DateTimeOffset? StartedAt => StartTime is { } ms ? DateTimeOffset.FromUnixTimeMilliseconds(ms) : null;

    /// <summary><see cref="EndTime"/> as a <see cref="DateTimeOffset"/> (null while running, and for DRIVER jobs that report 0).</summary>
    [JsonIgnore]
    public DateTimeOffset? EndedAt => EndTime is { } ms and > 0 ? DateTimeOffset.FromUnixTimeMilliseconds(ms) : null;
}

/// <summary>A job's driver (Ray's <c>DriverInfo</c>); the pid is a string on the wire.</summary>
public sealed record DriverInfo
{
    /// <summary>Ray's core JobID (hex) of the driver.</summary>
    [JsonPropertyName("id")]
    public string Id { get; init; } = string.Empty;

    /// <summary>IP address of the node the driver runs on.</summary>
    [JsonPropertyName("node_ip_address")]
    public string NodeIpAddress { get; init; } = string.Empty;

    /// <summary>Process id of the driver, as Ray sends it (a string).</summary>
    [JsonPropertyName("pid")]
    public string Pid { get; init; } = string.Empty;
}

/// <summary>What <c>GET /api/version</c> answers (ray:python/ray/dashboard/modules/version.py :: VersionResponse).</summary>
public sealed record JobsApiVersion
{
    /// <summary>The Jobs API level as a string holding an integer (<c>"4"</c> on releases).</summary>
    [JsonPropertyName("version")]
    public string Version { get; init; } = string.Empty;

    /// <summary>The cluster's Ray version, e.g. <c>2.51.0</c>; feature gates compare against it.</summary>
    [JsonPropertyName("ray_version")]
    public string RayVersion { get; init; } = string.Empty;

    /// <summary>The commit the cluster's Ray was built from.</summary>
    [JsonPropertyName("ray_commit")]
    public string? RayCommit { get; init; }

    /// <summary>The cluster session's name (<c>session_&lt;date&gt;_&lt;time&gt;_&lt;pid&gt;</c>), when sent.</summary>
    [JsonPropertyName("session_name")]
    public string? SessionName { get; init; }
}
