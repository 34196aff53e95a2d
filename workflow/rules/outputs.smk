# The paper's outputs: time profiling (Table 3), noise landscape (Figure 1), Tables 2-3, Figures 1-4.


rule profile_time:
    """Table 3 measured fairly: every method, same device, same batches, interleaved step by step in one job."""
    input:
        data="results/data/{dataset}/meta.json",
        model=starting_weights(),
    output:
        "results/profile/{dataset}/times.json",
    params:
        offline=OFFLINE,
        spec=lambda w: as_json(profile_spec(config, w.dataset, SEEDS[0], RESOURCES)),
    priority: 2  # a long job with nothing waiting on it but Table 3: start it early
    # Every core (workflow.cores), so that Snakemake runs nothing beside it: other jobs' load
    # would skew the timings. A lambda with a fallback, as cluster runs have no total core count
    # (profiles/slurm sets its threads).
    threads: lambda wildcards: workflow.resource_settings.cores or 1
    resources:
        gpu=1,
        runtime=600,
        mem_mb=16000,
    log:
        "logs/profile/{dataset}.log",
    benchmark:
        "benchmarks/profile/{dataset}.tsv"
    conda:
        ENV
    shell:
        "{params.offline} python -m floodx.profiling --spec {params.spec} --data results/data/{wildcards.dataset} "
        "--out {output} --threads {threads} > {log} 2>&1"


rule landscape:
    """Figure 1: loss under Gaussian noise on the input embeddings, for each final model."""
    input:
        unpack(landscape_models),
    output:
        "results/landscape/{dataset}/seed{seed}/noise_loss.csv",
    params:
        offline=OFFLINE,
        models=lambda w, input: " ".join(
            f"--model {m}={final_run(w.dataset, m, w.seed)}/checkpoints/epoch-{attack_epoch(w)}" for m in METHODS),
        alphas=" ".join(str(a) for a in config["figures"]["noise_alphas"]),
        max_length=lambda w: config["datasets"][w.dataset]["max_length"],
        draws=config["figures"]["noise_draws"],
        examples=config["figures"]["noise_examples"],
        seed=lambda w: w.seed,
    threads: 1
    resources:
        gpu=1,
        runtime=120,
        mem_mb=8000,
    log:
        "logs/landscape/{dataset}/seed{seed}.log",
    benchmark:
        "benchmarks/landscape/{dataset}/seed{seed}.tsv"
    conda:
        ENV
    shell:
        "{params.offline} python -m floodx.landscape {params.models} --data results/data/{wildcards.dataset} "
        "--max-length {params.max_length} --draws {params.draws} --max-examples {params.examples} "
        "--alphas {params.alphas} --seed {params.seed} --out {output} --threads {threads} > {log} 2>&1"


# ---------------------------------------------------------------- tables
rule table2:
    input:
        summaries=expand("results/attack/{dataset}/{method}/seed{seed}/{attack}/summary.json",
                         dataset=DATASETS, method=METHODS, seed=SEEDS, attack=ATTACKS),
        flood_levels=expand("results/grid_attack/{dataset}/levels.json", dataset=DATASETS) if GRID_TEST_ATTACK else [],
        saturation=expand("results/attack/{dataset}/{method}/seed{seed}/saturation.json",
                          dataset=DATASETS, method=METHODS, seed=SEEDS),
    output:
        "results/tables/table2.md",
        report("results/tables/table2.html", caption="../report/table2.rst", category="Tables", labels={"table": "Table 2"}),
        "results/tables/table2.csv",
        "results/tables/table2.tex",
        "results/tables/reading.md",
        report("results/tables/reading.html", caption="../report/reading.rst", category="Tables",
               labels={"table": "What Table 2 shows"}),
        "results/tables/table2_vs_paper.md",
        report("results/tables/table2_vs_paper.html", caption="../report/table2_vs_paper.rst", category="Tables",
               labels={"table": "Table 2 beside the paper"}),
        "results/tables/table2_vs_paper.csv",
    params:
        caption=shlex.quote(config_caption()),
        paper_map=as_json(paper_map(config)),
    log:
        "logs/tables/table2.log",
    conda:
        ENV
    shell:
        "python -m floodx.tables table2 --summaries {input.summaries} --flood-levels {input.flood_levels} "
        "--saturation {input.saturation} "
        "--out-dir results/tables --paper-map {params.paper_map} --caption {params.caption} > {log} 2>&1"


rule table_calibrated:
    """Table 2 on calibrated scores (attacks.calibrated), beside the same models' plain attacks (floodx.tables.calibrated)."""
    input:
        plain=expand("results/attack/{dataset}/{method}/seed{seed}/{attack}/summary.json",
                     dataset=DATASETS, method=CALIBRATED, seed=SEEDS, attack=ATTACKS),
        calibrated=expand("results/attack_calibrated/{dataset}/{method}/seed{seed}/{attack}/summary.json",
                          dataset=DATASETS, method=CALIBRATED, seed=SEEDS, attack=ATTACKS),
        saturation=expand("results/attack/{dataset}/{method}/seed{seed}/saturation.json",
                          dataset=DATASETS, method=CALIBRATED, seed=SEEDS),
    output:
        "results/tables/calibrated.md",
        report("results/tables/calibrated.html", caption="../report/calibrated.rst", category="Tables",
               labels={"table": "Table 2 on calibrated scores"}),
        "results/tables/calibrated.csv",
    params:
        caption=shlex.quote(config_caption()),
    log:
        "logs/tables/calibrated.log",
    conda:
        ENV
    shell:
        "python -m floodx.tables calibrated --plain {input.plain} --calibrated {input.calibrated} "
        "--saturation {input.saturation} --out-dir results/tables --caption {params.caption} > {log} 2>&1"


rule table3:
    input:
        expand("results/profile/{dataset}/times.json", dataset=DATASETS),
    output:
        "results/tables/table3.md",
        report("results/tables/table3.html", caption="../report/table3.rst", category="Tables", labels={"table": "Table 3"}),
        "results/tables/table3.csv",
        "results/tables/table3.tex",
    params:
        paper_map=as_json(paper_map(config)),
    log:
        "logs/tables/table3.log",
    conda:
        ENV
    shell:
        "python -m floodx.tables table3 --times {input} --out-dir results/tables --paper-map {params.paper_map} > {log} 2>&1"


rule search_table:
    input:
        choices=expand("results/search/{dataset}/{flood_method}/seed{seed}/choice.json",
                       dataset=DATASETS, flood_method=FLOOD_METHODS, seed=SEEDS),
        windows=expand("results/probe/{dataset}/seed{seed}/window.json", dataset=DATASETS, seed=SEEDS),
    output:
        "results/tables/search.md",
        report("results/tables/search.html", caption="../report/search.rst", category="Tables",
               labels={"table": "Flood-level search"}),
        "results/tables/search.csv",
    log:
        "logs/tables/search.log",
    conda:
        ENV
    shell:
        "python -m floodx.tables search --choices {input.choices} --windows {input.windows} "
        "--out-dir results/tables > {log} 2>&1"


# ---------------------------------------------------------------- figures (first seed)
rule figure1:
    input:
        f"results/landscape/{{dataset}}/seed{SEEDS[0]}/noise_loss.csv",
    output:
        report("results/figures/figure1_{dataset}.png", caption="../report/figure1.rst", category="Figures"),
    params:
        caption=lambda w: shlex.quote(caption_for(config, w.dataset)),
    log:
        "logs/figures/figure1_{dataset}.log",
    conda:
        ENV
    shell:
        "python -m floodx.figures figure1 --noise-loss {input} --dataset {wildcards.dataset} "
        "--caption {params.caption} --out {output} > {log} 2>&1"


rule figure2:
    input:
        flooding=f"results/search/{{dataset}}/flooding/seed{SEEDS[0]}/choice.json",
        flooding_x=f"results/search/{{dataset}}/flooding_x/seed{SEEDS[0]}/choice.json",
        window=f"results/probe/{{dataset}}/seed{SEEDS[0]}/window.json",
    output:
        report("results/figures/figure2_{dataset}.png", caption="../report/figure2.rst", category="Figures"),
    params:
        caption=lambda w: shlex.quote(caption_for(config, w.dataset, extra=dev_subset_text(w.dataset))),
        attack=config["search"]["attack"],
    log:
        "logs/figures/figure2_{dataset}.log",
    conda:
        ENV
    shell:
        "python -m floodx.figures figure2 --flooding-choice {input.flooding} --flooding-x-choice {input.flooding_x} "
        "--window {input.window} --attack {params.attack} --dataset {wildcards.dataset} "
        "--caption {params.caption} --out {output} > {log} 2>&1"


rule figure2_test:
    """figures.grid_test_attack: Figure 2 as the paper draws it, test Aua% of every searched level (over the seeds)."""
    input:
        "results/grid_attack/{dataset}/levels.json",
    output:
        report("results/figures/figure2_test_{dataset}.png", caption="../report/figure2_test.rst", category="Figures"),
    params:
        caption=lambda w: shlex.quote(caption_for(config, w.dataset)),
    log:
        "logs/figures/figure2_test_{dataset}.log",
    conda:
        ENV
    shell:
        "python -m floodx.figures figure2-test --levels {input} --dataset {wildcards.dataset} "
        "--caption {params.caption} --out {output} > {log} 2>&1"


rule figure3:
    input:
        accordance=f"results/probe/{{dataset}}/seed{SEEDS[0]}/accordance.csv",
        window=f"results/probe/{{dataset}}/seed{SEEDS[0]}/window.json",
    output:
        report("results/figures/figure3_{dataset}.png", caption="../report/figure3.rst", category="Figures"),
    params:
        caption=lambda w: shlex.quote(caption_for(config, w.dataset)),
    log:
        "logs/figures/figure3_{dataset}.log",
    conda:
        ENV
    shell:
        "python -m floodx.figures figure3 --accordance {input.accordance} --window {input.window} "
        "--dataset {wildcards.dataset} --caption {params.caption} --out {output} > {log} 2>&1"


rule figure4:
    input:
        lambda w: list(figure4_inputs(w)["metrics"].values()) + figure4_inputs(w)["aua"],
    output:
        report("results/figures/figure4_{dataset}.png", caption="../report/figure4.rst", category="Figures"),
    params:
        args=lambda w: " ".join(
            [f"--metrics {k}={v}" for k, v in figure4_inputs(w)["metrics"].items()]
            + ["--aua"] + figure4_inputs(w)["aua"]),
        attack=ATTACKS[0],
        caption=lambda w: shlex.quote(caption_for(config, w.dataset)),
    log:
        "logs/figures/figure4_{dataset}.log",
    conda:
        ENV
    shell:
        "python -m floodx.figures figure4 {params.args} --attack {params.attack} --dataset {wildcards.dataset} "
        "--caption {params.caption} --out {output} > {log} 2>&1"


# ---------------------------------------------------------------- the results page
rule results_page:
    """The run's results page (floodx.results_page), generated from its tables and figures; `make publish`
    copies it into docs/."""
    input:
        tables=expand("results/tables/{table}.md", table=["table2", "reading", "search", "table3"]
                      + (["calibrated"] if CALIBRATED else [])),
        figures=page_figures(),
    output:
        page="results/results.md",
        html=report("results/results.html", caption="../report/results.rst", category="Results page"),
    params:
        config=as_json(config),
        title=shlex.quote(f"floodx results: {config_caption()}"),
    log:
        "logs/results_page.log",
    conda:
        ENV
    shell:
        "python -m floodx.results_page write --results results --benchmarks benchmarks --config-json {params.config} "
        "--title {params.title} --figures {input.figures} --out {output.page} > {log} 2>&1"
