using System.Text.Json.Nodes;
using RayClient.Server.Jobs;
using RayClient.Server.Python;
using RayClient.Server.Workers;

namespace RayClient.Server;

/// <summary>What jobs and their drivers need besides the engine: the drivers' <c>ray</c> package, their link, cluster information.</summary>
internal sealed partial class ServerState
{
    private readonly Lock _driverGate = new();
    private DriverLink? _driverLink;
    private string? _driverModuleDirectory;

    /// <summary>Ray's session name (<c>session_&lt;date&gt;_&lt;time&gt;_&lt;pid&gt;</c>), as /api/version reports it.</summary>
    public string SessionName => field ??= $"session_{Options.TimeProvider.GetLocalNow():yyyy-MM-dd_HH-mm-ss_ffffff}_{Environment.ProcessId}";

    /// <summary>The <c>ray://</c> address of this server (set once it listens).</summary>
    public string ClientAddress { get; set; } = string.Empty;

    /// <summary>The directory holding the embedded <c>ray</c> package that job drivers import (written on first use).</summary>
    public string DriverModuleDirectory
    {
        get
        {
            lock (_driverGate)
            {
                if (_driverModuleDirectory is null)
                {
                    var root = Path.Combine(WorkDirectory, "driver");
                    var package = Path.Combine(root, "ray");
                    Directory.CreateDirectory(package);
                    PythonResources.Write(PythonResources.Shared, Path.Combine(package, PythonResources.Shared));
                    PythonResources.Write(PythonResources.Driver, Path.Combine(package, "__init__.py"));
                    _driverModuleDirectory = root;
                }

                return _driverModuleDirectory;
            }
        }
    }

    /// <summary>Lets a job's driver processes connect back; returns the link's address and the job's token.</summary>
    public (string Address, string Token) RegisterJobDriver(string submissionId, WorkerEnvironment environment, JsonObject? runtimeEnv, JobManager manager)
    {
        DriverLink link;
        lock (_driverGate)
        {
            link = _driverLink ??= new DriverLink(this);
        }

        return (link.Address, link.Register(submissionId, environment, runtimeEnv, manager));
    }

    /// <summary>A job ended: its drivers' sessions end too (Ray ends a job's tasks and actors with its driver).</summary>
    public void CloseJobSessions(string submissionId)
    {
        DriverLink? link;
        lock (_driverGate)
        {
            link = _driverLink;
        }

        link?.CloseJob(submissionId);
    }

    private async ValueTask DisposeDriverLinkAsync()
    {
        DriverLink? link;
        lock (_driverGate)
        {
            link = _driverLink;
            _driverLink = null;
        }

        if (link is not null)
        {
            await link.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <summary>The nodes table as Ray's <c>ray.nodes()</c> returns it (one node: this server).</summary>
    public string NodesJson() => new JsonArray(new JsonObject
    {
        ["NodeID"] = NodeId,
        ["Alive"] = true,
        ["alive"] = true,
        ["NodeManagerAddress"] = "127.0.0.1",
        ["NodeManagerHostname"] = Environment.MachineName,
        ["NodeManagerPort"] = 0,
        ["NodeName"] = "127.0.0.1",
        ["Resources"] = new JsonObject(Engine.Scheduler.Total.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)JsonValue.Create(kv.Value)))),
        ["Labels"] = new JsonObject(),
    }).ToJsonString();

    /// <summary>Cluster information for a job driver: nodes, cluster_resources or available_resources.</summary>
    public string ClusterInfoJson(string what, ClientSession session) => what switch
    {
        "nodes" => NodesJson(),
        "cluster_resources" => new JsonObject(Engine.Scheduler.Total.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)JsonValue.Create(kv.Value)))).ToJsonString(),
        "available_resources" => new JsonObject(Engine.Scheduler.AvailableSnapshot().Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)JsonValue.Create(kv.Value)))).ToJsonString(),
        _ => throw new TicketException(ServerErrors.ValueError($"Unknown cluster information '{what}'.")),
    };
}
