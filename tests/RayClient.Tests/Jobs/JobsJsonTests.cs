using System.Text.Json;
using RayClient.Jobs;

namespace RayClient.Tests.Jobs;

/// <summary>The wire JSON against Ray's field names (job/common.py, job/pydantic_models.py; spec ray-jobs-api.md §3-4).</summary>
public sealed class JobsJsonTests
{
    // The spec's example of a finished SUBMISSION job, plus fields only master sends.
    private const string FinishedJob = """
        {"type":"SUBMISSION","job_id":"02000000","submission_id":"raysubmit_WwK1fA6yN5ZB2hHc",
         "driver_info":{"id":"02000000","node_ip_address":"10.0.0.5","pid":"48213"},
         "status":"SUCCEEDED","entrypoint":"python main.py","message":"Job finished successfully.",
         "error_type":null,"start_time":1718000000123,"end_time":1718000042456,
         "metadata":{"owner":"alice"},
         "runtime_env":{"working_dir":"gcs://_ray_pkg_1a2b3c4d5e6f7081.zip","pip":{"packages":["requests"],"pip_check":false},"_ray_commit":"abc"},
         "driver_agent_http_address":"http://10.0.0.5:52365","driver_node_id":"ffff","driver_exit_code":0,
         "retry_policy":null,"attempt_number":0,"failure_info":{"kind":"x"}}
        """;

    [Fact]
    public void JobDetails_RaysExample_ReadsEveryField()
    {
        var job = JsonSerializer.Deserialize(FinishedJob, JobsJsonContext.Default.JobDetails)!;

        Assert.Equal(JobType.Submission, job.Type);
        Assert.Equal("02000000", job.JobId);
        Assert.Equal("raysubmit_WwK1fA6yN5ZB2hHc", job.SubmissionId);
        Assert.Equal(new DriverInfo { Id = "02000000", NodeIpAddress = "10.0.0.5", Pid = "48213" }, job.DriverInfo);
        Assert.Equal(JobStatus.Succeeded, job.Status);
        Assert.Equal("python main.py", job.Entrypoint);
        Assert.Equal("Job finished successfully.", job.Message);
        Assert.Null(job.ErrorType);
        Assert.Equal(DateTimeOffset.FromUnixTimeMilliseconds(1718000000123), job.StartedAt);
        Assert.Equal(1718000042456, job.EndTime);
        Assert.Equal("alice", job.Metadata!["owner"]);
        Assert.Equal("gcs://_ray_pkg_1a2b3c4d5e6f7081.zip", job.RuntimeEnv!["working_dir"]!.GetValue<string>());
        Assert.Equal("http://10.0.0.5:52365", job.DriverAgentHttpAddress);
        Assert.Equal(0, job.DriverExitCode);
    }

    [Fact]
    public void JobDetails_RunningDriverJobWithNulls_Reads()
    {
        const string json = """[{"type":"DRIVER","job_id":"01000000","submission_id":null,"driver_info":null,"status":"RUNNING","entrypoint":"","message":null,"error_type":null,"start_time":1,"end_time":0,"metadata":null,"runtime_env":null,"driver_agent_http_address":null,"driver_node_id":null}]""";

        var job = Assert.Single(JsonSerializer.Deserialize(json, JobsJsonContext.Default.ListJobDetails)!);

        Assert.Equal(JobType.Driver, job.Type);
        Assert.Equal(JobStatus.Running, job.Status);
        Assert.Null(job.EndedAt);
        Assert.Null(job.DriverExitCode);
    }

    [Theory]
    [InlineData("PENDING", JobStatus.Pending, false)]
    [InlineData("RUNNING", JobStatus.Running, false)]
    [InlineData("STOPPED", JobStatus.Stopped, true)]
    [InlineData("SUCCEEDED", JobStatus.Succeeded, true)]
    [InlineData("FAILED", JobStatus.Failed, true)]
    public void JobStatus_WireNames_RoundTrip(string wire, JobStatus status, bool terminal)
    {
        var job = JsonSerializer.Deserialize($$"""{"type":"SUBMISSION","status":"{{wire}}","entrypoint":"x"}""", JobsJsonContext.Default.JobDetails)!;

        Assert.Equal(status, job.Status);
        Assert.Equal(terminal, status.IsTerminal());
        Assert.Equal(wire, status.ToWireName());
    }

    [Fact]
    public void SubmitRequest_AllFields_UsesRaysNamesInRaysOrderWithoutNulls()
    {
        var request = new JobSubmitRequestJson
        {
            Entrypoint = "python script.py",
            SubmissionId = "raysubmit_4LamXRuQpYdSMg7J",
            RuntimeEnv = new System.Text.Json.Nodes.JsonObject { ["working_dir"] = "gcs://_ray_pkg_3f8e1ddc4c5c8f49.zip" },
            Metadata = new Dictionary<string, string> { ["owner"] = "alice" },
            EntrypointNumCpus = 1.5,
            EntrypointNumGpus = 1,
            EntrypointMemory = 1073741824,
            EntrypointResources = new Dictionary<string, double> { ["custom"] = 2 },
        };

        var json = JsonSerializer.Serialize(request, JobsJsonContext.Default.JobSubmitRequestJson);

        Assert.Equal(
            """{"entrypoint":"python script.py","submission_id":"raysubmit_4LamXRuQpYdSMg7J","runtime_env":{"working_dir":"gcs://_ray_pkg_3f8e1ddc4c5c8f49.zip"},"metadata":{"owner":"alice"},"entrypoint_num_cpus":1.5,"entrypoint_num_gpus":1,"entrypoint_memory":1073741824,"entrypoint_resources":{"custom":2}}""",
            json);
    }

    [Fact]
    public void SubmitRequest_OnlyEntrypoint_SendsNoOtherKey()
    {
        var json = JsonSerializer.Serialize(new JobSubmitRequestJson { Entrypoint = "echo hi" }, JobsJsonContext.Default.JobSubmitRequestJson);

        Assert.Equal("""{"entrypoint":"echo hi"}""", json);
    }

    [Fact]
    public void Responses_RaysShapes_Read()
    {
        Assert.Equal("raysubmit_a", JsonSerializer.Deserialize("""{"job_id":"raysubmit_a","submission_id":"raysubmit_a"}""", JobsJsonContext.Default.JobSubmitResponseJson)!.SubmissionId);
        Assert.True(JsonSerializer.Deserialize("""{"stopped":true}""", JobsJsonContext.Default.JobStopResponseJson)!.Stopped);
        Assert.True(JsonSerializer.Deserialize("""{"deleted":true}""", JobsJsonContext.Default.JobDeleteResponseJson)!.Deleted);
        Assert.Equal("a\u00e9\n", JsonSerializer.Deserialize("""{"logs":"a\u00e9\n"}""", JobsJsonContext.Default.JobLogsResponseJson)!.Logs);
        var version = JsonSerializer.Deserialize("""{"version":"4","ray_version":"2.51.0","ray_commit":"abc","session_name":"session_x"}""", JobsJsonContext.Default.JobsApiVersion)!;
        Assert.Equal(("4", "2.51.0", "abc", "session_x"), (version.Version, version.RayVersion, version.RayCommit, version.SessionName));
    }
}
