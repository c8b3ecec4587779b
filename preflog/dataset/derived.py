"""The other records of a build, from the same selected pairs and signals: KTO examples, rankings, ties.

* **KTO** (TRL's unpaired format: ``prompt``, ``completion``, ``label``) behind a
  quality gate: a label only where a judgement supports it. An explicit rating
  keeps its label; an implicit signal (a click, a copy) only with
  ``kto_implicit``; a scored answer (a reward model's SCORES) is desirable at or
  above ``kto_desirable`` and undesirable at or below ``kto_undesirable``, and
  left out in between. What is left out is counted by reason.
* **Listwise**: one row per RANKING or SCORES judgement with three or more
  answers, the answers best first with their ranks (1 + how many answers beat
  it, so ties share a rank) and scores, for trainers that take more than one
  rejected answer.
* **Ties and both bad**: two answers of one ranking with no pair between them
  (a ranking decides every pair but the tied ones), and two answers of one
  request each rated undesirable by an explicit rating.

Every row has the split its normalised prompt hashes to, the same as the pairs'.
"""

from __future__ import annotations

from .select import Selection, sort_keys, split_of

__all__ = ["KTO_KEYS", "RECORD_IDS", "kto_rows", "listwise_rows", "tie_rows"]

#: the order of KTO examples: example_id, unique unless blank, then the texts
KTO_KEYS = sort_keys("example_id, prompt, completion", "example_id")

#: the id column of each record set (decontamination drops rows by it)
RECORD_IDS = {"kto": "example_id", "listwise": "feedback_id", "ties": "tie_id"}


def kto_rows(s: Selection) -> str:
    """The query of KTO examples from relations ``signals`` and ``pairs`` (a build stores them by :data:`KTO_KEYS`).

    Its ``reason`` column says why the gate left an example out (NULL: kept).
    """
    desirable = "NULL" if s.kto_desirable is None else float(s.kto_desirable)
    undesirable = "NULL" if s.kto_undesirable is None else float(s.kto_undesirable)
    between = "a score between the KTO thresholds (--kto-desirable, --kto-undesirable)"
    scores_taken = s.kto_desirable is not None or s.kto_undesirable is not None  # else scores give no KTO rows
    query = f"""
        WITH scored AS (
            SELECT DISTINCT ON (feedback_id, idx) * FROM (
                SELECT feedback_id, chosen_index AS idx, chosen AS completion, chosen_messages AS completion_messages,
                       chosen_score AS score, * EXCLUDE (feedback_id) FROM pairs WHERE chosen_score IS NOT NULL
                UNION ALL BY NAME
                SELECT feedback_id, rejected_index AS idx, rejected AS completion,
                       rejected_messages AS completion_messages, rejected_score AS score,
                       * EXCLUDE (feedback_id) FROM pairs WHERE rejected_score IS NOT NULL
            ) ORDER BY feedback_id, idx, pair_id
        ),
        candidates AS (
            SELECT signal_id AS example_id, prompt_key, prompt, prompt_messages, completion, completion_messages,
                   CASE WHEN explicit OR {bool(s.kto_implicit)} THEN label END AS label,
                   CASE WHEN explicit THEN NULL WHEN {bool(s.kto_implicit)} THEN NULL
                        ELSE 'implicit signal (no explicit judgement; --kto-implicit takes it)' END AS reason,
                   value AS score, request_id, feedback_id, model, model_version, completion_model, source,
                   source_id, source_version, kind, explicit, feedback_time, tenant, user_id
            FROM signals
            UNION ALL BY NAME
            SELECT feedback_id || ':' || idx AS example_id, prompt_key, prompt, prompt_messages, completion,
                   completion_messages,
                   CASE WHEN score >= {desirable} THEN TRUE WHEN score <= {undesirable} THEN FALSE END AS label,
                   CASE WHEN score >= {desirable} OR score <= {undesirable} THEN NULL
                        ELSE '{between}' END AS reason,
                   score, request_id, feedback_id, model, model_version,
                   coalesce(CASE WHEN idx = chosen_index THEN chosen_model ELSE rejected_model END, model)
                       AS completion_model,
                   source, source_id, source_version, kind, explicit, feedback_time, tenant, user_id
            FROM scored WHERE {scores_taken}
        )
        SELECT * EXCLUDE (prompt_key), {split_of(s)} AS split FROM candidates
    """
    return query


def _answers() -> str:
    """Every answer of a judgement once, with how many answers beat it, from its pairs."""
    return """
        answers AS (
            SELECT feedback_id, idx, any_value(completion) AS completion, any_value(score) AS score,
                   CAST(sum(lost) AS INTEGER) AS beaten_by
            FROM (
                SELECT feedback_id, chosen_index AS idx, chosen AS completion, chosen_score AS score, 0 AS lost
                FROM pairs
                UNION ALL
                SELECT feedback_id, rejected_index, rejected, rejected_score, 1 FROM pairs
            ) GROUP BY feedback_id, idx
        )
    """


def listwise_rows(s: Selection) -> str:
    """The query of one row per ranking or score list of three or more answers (relation ``pairs``), best first."""
    query = f"""
        WITH judged AS (  -- three answers or more take two pairs or more: most judgements are one pair
            SELECT * FROM pairs WHERE kind IN ('RANKING', 'SCORES') AND feedback_id IN (
                SELECT feedback_id FROM pairs WHERE kind IN ('RANKING', 'SCORES') GROUP BY feedback_id
                HAVING count(*) >= 2)
        ),
        {_answers().replace("FROM pairs", "FROM judged")},
        lists AS (
            SELECT feedback_id,
                   list(completion ORDER BY beaten_by, idx) AS completions,
                   list(beaten_by + 1 ORDER BY beaten_by, idx) AS ranks,
                   CASE WHEN count(score) > 0 THEN list(score ORDER BY beaten_by, idx) END AS scores,  -- no null lists
                   list(idx ORDER BY beaten_by, idx) AS indices
            FROM answers GROUP BY feedback_id HAVING count(*) >= 3
        ),
        first AS (
            SELECT DISTINCT ON (feedback_id) feedback_id, prompt_key, prompt, prompt_messages, request_id, model,
                   model_version, source, source_id, source_version, kind, explicit, feedback_time, tenant, user_id
            FROM judged ORDER BY feedback_id, pair_id
        )
        SELECT f.prompt, l.completions[1] AS chosen,
               -- only answers ranked below the best: an answer tied with it is not rejected
               list_transform(list_filter(list_zip(l.completions, l.ranks), lambda x: x[2] > l.ranks[1]),
                              lambda x: x[1]) AS rejected,
               l.completions, l.ranks,
               l.scores, l.indices, f.* EXCLUDE (prompt, prompt_key), {split_of(s, "f.prompt_key")} AS split
        FROM lists l JOIN first f USING (feedback_id)
        ORDER BY feedback_id
    """
    return query


def tie_rows(s: Selection) -> str:
    """The query of ties of a ranking and of answers of one request that explicit ratings both call undesirable."""
    query = f"""
        WITH ranked AS (  -- a tie leaves a ranking two pairs or more (two tied answers alone give none)
            SELECT * FROM pairs WHERE kind = 'RANKING' AND feedback_id IN (
                SELECT feedback_id FROM pairs WHERE kind = 'RANKING' GROUP BY feedback_id HAVING count(*) >= 2)
        ),
        {_answers().replace("FROM pairs", "FROM ranked")},
        first AS (
            SELECT DISTINCT ON (feedback_id) feedback_id, prompt_key, prompt, prompt_messages, request_id, model,
                   model_version,
                   source, source_id, source_version, kind, explicit, feedback_time, tenant, user_id
            FROM ranked ORDER BY feedback_id, pair_id
        ),
        decided AS (
            SELECT DISTINCT feedback_id, least(chosen_index, rejected_index) AS a,
                   greatest(chosen_index, rejected_index) AS b FROM ranked
        ),
        ties AS (
            SELECT 'tie' AS relation, x.feedback_id || ':' || x.idx || ':' || y.idx AS tie_id,
                   x.idx AS index_a, y.idx AS index_b, x.completion AS completion_a, y.completion AS completion_b,
                   f.* EXCLUDE (feedback_id), x.feedback_id AS feedback_id
            FROM answers x JOIN answers y ON x.feedback_id = y.feedback_id AND x.idx < y.idx
            JOIN first f ON f.feedback_id = x.feedback_id
            WHERE NOT EXISTS (SELECT 1 FROM decided d WHERE d.feedback_id = x.feedback_id AND d.a = x.idx
                              AND d.b = y.idx)
        ),
        bad AS (
            SELECT DISTINCT ON (request_id, completion_index) * FROM signals
            WHERE explicit AND NOT label ORDER BY request_id, completion_index, signal_id
        ),
        both_bad AS (
            SELECT 'both_bad' AS relation, x.request_id || ':' || x.completion_index || ':' || y.completion_index
                   AS tie_id, x.completion_index AS index_a, y.completion_index AS index_b,
                   x.completion AS completion_a, y.completion AS completion_b, x.prompt_key, x.prompt,
                   x.prompt_messages, x.request_id,
                   x.model, x.model_version, x.source, x.source_id, x.source_version, x.kind, x.explicit,
                   x.feedback_time, x.tenant, x.user_id, x.feedback_id
            FROM bad x JOIN bad y ON x.request_id = y.request_id AND x.completion_index < y.completion_index
        )
        SELECT * EXCLUDE (prompt_key), {split_of(s)} AS split
        FROM (SELECT * FROM ties UNION ALL BY NAME SELECT * FROM both_bad)
        ORDER BY tie_id
    """
    return query
