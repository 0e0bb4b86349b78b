{#- A grain of several columns: no two rows share the combination. dbt_utils has this test, but
    packages from dbt Hub need the network to install, and this project installs offline. -#}
{% test unique_combination_of_columns(model, combination_of_columns) %}

select
    {{ combination_of_columns | join(",\n    ") }},
    count(*) as rows_with_this_key

from {{ model }}
group by
    {{ combination_of_columns | join(",\n    ") }}
having count(*) > 1

{% endtest %}
