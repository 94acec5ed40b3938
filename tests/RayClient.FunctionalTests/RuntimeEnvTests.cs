using System.IO.Compression;
using System.Text;
using RayClient.FunctionalTests.Infrastructure;

namespace RayClient.FunctionalTests;

[Collection(ServerCollection.Name)]
public sealed class RuntimeEnvTests(ServerFixture fixture) : IDisposable
{
    private readonly string _scratch = Directory.CreateTempSubdirectory("rayclient-renv-").FullName;

    public void Dispose() => Directory.Delete(_scratch, recursive: true);

    [Fact]
    public async Task TaskEnv_PyModulesWorkingDirAndEnvVars_ApplyToThatTaskOnly()
    {
        var taskDir = Directory.CreateDirectory(Path.Combine(_scratch, "task_wd")).FullName;
        await File.WriteAllTextAsync(Path.Combine(taskDir, "wd_module.py"), "def where():\n    return 'task working dir'\n");
        await File.WriteAllTextAsync(Path.Combine(taskDir, "probe.py"),
            "import os\n\ndef probe():\n    import mymod, wd_module\n    return [mymod.VALUE, wd_module.where(), os.environ.get('MODE')]\n");
        var module = Directory.CreateDirectory(Path.Combine(_scratch, "mods", "mymod")).FullName;
        await File.WriteAllTextAsync(Path.Combine(module, "__init__.py"), "VALUE = 'from py_modules'\n");
        await using var ray = await fixture.ConnectAsync(o => o.RuntimeEnv = new RuntimeEnv
        {
            WorkingDir = fixture.WorkingDir,
            EnvVars = new Dictionary<string, string> { ["MODE"] = "job" },
        });

        var probed = await ray.Task(PyFunction.Of<List<string>>("probe", "probe"))
            .SetRuntimeEnv(new RuntimeEnv
            {
                WorkingDir = taskDir,
                PyModules = [module],
                EnvVars = new Dictionary<string, string> { ["MODE"] = "task" },
            })
            .Remote();
        var jobDefault = await ray.Call(PyFunction.Of<string>("tasks", "env"), "MODE");

        Assert.Equal(["from py_modules", "task working dir", "task"], probed);
        Assert.Equal("job", jobDefault);
    }

    [Fact]
    public async Task TaskEnv_PipLocalWheel_IsImportableThereAndNowhereElse()
    {
        var wheel = BuildWheel(_scratch, "rcwheel", "0.1", "VALUE = 'installed from a wheel'\n");
        await using var ray = await fixture.ConnectAsync();

        var inEnv = await ray.Task(PyFunction.Of<string>("tasks", "import_value"), "rcwheel")
            .SetRuntimeEnv(new RuntimeEnv { WorkingDir = fixture.WorkingDir, Pip = RuntimeEnvPip.FromPackages(wheel) })
            .Remote();
        var elsewhere = await Assert.ThrowsAsync<RayTaskException>(() => ray.Call(PyFunction.Of<string>("tasks", "import_value"), "rcwheel").GetAsync());

        Assert.Equal("installed from a wheel", inEnv);
        Assert.Equal("builtins.ModuleNotFoundError", elsewhere.PythonType);
    }

    [Fact]
    public async Task TaskEnv_PipFails_IsARuntimeEnvErrorWithPipsOutput()
    {
        await using var ray = await fixture.ConnectAsync();

        var error = await Assert.ThrowsAsync<RayRuntimeEnvException>(() => ray.Task(PyFunction.Of<long>("tasks", "add"), 1, 2)
            .SetRuntimeEnv(new RuntimeEnv { WorkingDir = fixture.WorkingDir, Pip = RuntimeEnvPip.FromPackages(Path.Combine(_scratch, "missing-1.0-py3-none-any.whl")) })
            .Remote()
            .GetAsync());

        Assert.Contains("pip install failed", error.Message);
        Assert.Contains("missing-1.0-py3-none-any.whl", error.Message);
    }

    [Fact]
    public async Task JobEnv_Upload_ReportsProgressOnce()
    {
        var dir = Directory.CreateDirectory(Path.Combine(_scratch, "progress_wd")).FullName;
        await File.WriteAllTextAsync(Path.Combine(dir, "m.py"), "VALUE = 1\n");
        var stages = new List<RayClient.Packaging.UploadStage>();
        var progress = new SyncProgress(p => { lock (stages) { stages.Add(p.Stage); } });

        await using (await fixture.ConnectAsync(o => { o.RuntimeEnv = new RuntimeEnv { WorkingDir = dir }; o.UploadProgress = progress; }))
        {
        }

        Assert.Contains(RayClient.Packaging.UploadStage.Hashing, stages);
        Assert.Contains(RayClient.Packaging.UploadStage.Uploaded, stages);
    }

    private sealed class SyncProgress(Action<RayClient.Packaging.UploadProgress> report) : IProgress<RayClient.Packaging.UploadProgress>
    {
        public void Report(RayClient.Packaging.UploadProgress value) => report(value);
    }

    [Fact]
    public async Task JobEnv_Invalid_IsRefusedBeforeAnythingIsUploaded()
    {
        var puts = fixture.Server.State.Kv.PutCount;

        var missing = await Assert.ThrowsAsync<RayRuntimeEnvException>(() => fixture.ConnectAsync(o => o.RuntimeEnv = new RuntimeEnv { WorkingDir = Path.Combine(_scratch, "nope") }));
        var badKeys = Assert.Throws<RayRuntimeEnvException>(() => RuntimeEnv.FromJson("""{"working_dir": 3}"""));

        Assert.Contains("working_dir", missing.Message);
        Assert.Contains("working_dir", badKeys.Message);
        Assert.Equal(puts, fixture.Server.State.Kv.PutCount);
    }

    /// <summary>A minimal pure-Python wheel, built here (no network, no build tools).</summary>
    private static string BuildWheel(string directory, string name, string version, string initPy)
    {
        var path = Path.Combine(directory, $"{name}-{version}-py3-none-any.whl");
        var distInfo = $"{name}-{version}.dist-info";
        var files = new Dictionary<string, string>
        {
            [$"{name}/__init__.py"] = initPy,
            [$"{distInfo}/METADATA"] = $"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
            [$"{distInfo}/WHEEL"] = "Wheel-Version: 1.0\nGenerator: rayclient-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        };
        using (var zip = ZipFile.Open(path, ZipArchiveMode.Create))
        {
            var record = new StringBuilder();
            foreach (var (entry, text) in files)
            {
                using (var writer = new StreamWriter(zip.CreateEntry(entry).Open()))
                {
                    writer.Write(text);
                }

                record.Append(entry).Append(",,\n");
            }

            record.Append(distInfo).Append("/RECORD,,\n");
            using var recordWriter = new StreamWriter(zip.CreateEntry($"{distInfo}/RECORD").Open());
            recordWriter.Write(record.ToString());
        }

        return path;
    }
}
